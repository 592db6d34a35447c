//! What an outgoing chain may hold: a message to send is turned into backend
//! terms here, and its quote preview made.

use super::Bridge;
use crate::backend::OutgoingMessage;
use crate::schema::{AccountId, Element, ErrorCode, OpError, chain_text};

/// A quote's text preview: the first characters of the message.
pub(super) fn preview(chain: &[Element]) -> String {
    const MAX_CHARS: usize = 80;
    chain_text(chain).chars().take(MAX_CHARS).collect()
}

impl Bridge {
    /// Turns a chain to send into backend terms: drops MessageSource, resolves a
    /// Quote (of a message of the same account), refuses what cannot be sent.
    pub(super) fn outgoing(&self, account: AccountId, chain: &[Element]) -> Result<OutgoingMessage, OpError> {
        let bad = |m: &str| Err(OpError::new(ErrorCode::BadMessage, m.to_owned()));
        let mut quote = None;
        let mut elements = Vec::with_capacity(chain.len());
        for e in chain {
            match e {
                Element::MessageSource { .. } => {}
                Element::Quote { id, .. } => {
                    if quote.is_some() {
                        return bad("a message quotes at most one message");
                    }
                    let info = self.resolve_source(id)?;
                    if info.msg.account != account {
                        return bad("a quoted message must belong to the same account");
                    }
                    quote = Some(info.msg.backend_id);
                }
                Element::Voice { .. } => return bad("Voice is receive-only"),
                Element::Forward { .. } => return bad("a forwarded message is sent with SendForward"),
                other => elements.push(other.clone()),
            }
        }
        if elements.is_empty() {
            return bad("the message has no content");
        }
        Ok(OutgoingMessage { quote, elements })
    }
}
