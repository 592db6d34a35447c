//! The operations only the simulated world has: inject a message or an event
//! as if a user did it.

use super::accounts::lookup_error;
use super::{Bridge, Caller, Scope};
use crate::backend::Simulated;
use crate::registry::{IdKind, LookupError};
use crate::schema::{
    ErrorCode, Event, GroupEvent, OpData, OpError, OpKind, SimEventContent, SimMessageContent, Target,
};

impl Bridge {
    pub(super) async fn sim_message(
        &self,
        caller: &Caller,
        name: OpKind,
        c: SimMessageContent,
    ) -> Result<OpData, OpError> {
        let (account, backend) = self.backend(c.account)?;
        let target = match (c.group, c.friend, c.temp) {
            (Some(group), None, false) => Target::Group { group },
            (None, Some(friend), false) => Target::Friend { friend },
            (Some(group), None, true) => Target::Temp {
                group,
                user: c.sender.ok_or_else(|| OpError::new(ErrorCode::BadRequest, "a temp message needs `sender`"))?,
            },
            _ => {
                return Err(OpError::new(
                    ErrorCode::BadRequest,
                    "give exactly one of `group` or `friend` (`temp` goes with `group`)",
                ));
            }
        };
        caller.check(name, account, Scope::of(target))?;
        let sender = match target {
            Target::Group { .. } => {
                c.sender.ok_or_else(|| OpError::new(ErrorCode::BadRequest, "a group message needs `sender`"))?
            }
            Target::Friend { friend } => friend,
            Target::Temp { user, .. } => user,
        };
        let mut message = self.outgoing(account, &c.message)?;
        self.media.vet(caller.kind, &mut message.elements).await?;
        let action = Simulated::Message {
            target,
            sender,
            anonymous: c.anonymous,
            quote: message.quote,
            elements: message.elements,
        };
        Ok(OpData::Caused { seq: backend.simulate(action).await? })
    }

    pub(super) async fn sim_event(&self, caller: &Caller, name: OpKind, c: SimEventContent) -> Result<OpData, OpError> {
        let (account, backend) = self.backend(c.account)?;
        let action = match c.event {
            Event::Msg(_) => {
                return Err(OpError::new(ErrorCode::BadRequest, "inject messages with SimMessage"));
            }
            Event::Revoke(r) => {
                let info = self.resolve_source(&r.msg_id)?;
                if info.msg.account != account {
                    return Err(lookup_error(IdKind::Source, LookupError::Unknown));
                }
                Simulated::Recall { target: info.msg.target, backend_id: info.msg.backend_id, revoker: r.revoker }
            }
            Event::User(e) => Simulated::User(e),
            Event::Group(e) => {
                // A reaction or essence names a message of this account's group.
                let about = match &e {
                    GroupEvent::Reaction { group, message_source, .. }
                    | GroupEvent::Essence { group, message_source, .. } => {
                        let info = self.resolve_source(message_source)?;
                        if info.msg.account != account || info.msg.target != (Target::Group { group: *group }) {
                            return Err(OpError::new(ErrorCode::UnknownMessage, "no such message in that group"));
                        }
                        Some(info.msg.backend_id)
                    }
                    _ => None,
                };
                Simulated::Group { event: e, about }
            }
        };
        caller.check(name, account, Scope::Account)?;
        Ok(OpData::Caused { seq: backend.simulate(action).await? })
    }
}
