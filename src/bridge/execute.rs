//! Operations → backends: `execute` is the one entry point for every consumer;
//! it dispatches to one small function per family (sending, recalling, muting,
//! answering requests, listing). Each resolves its IDs, checks the caller,
//! acts on the account, and for what must survive a crash, commits before it
//! answers.

use super::outgoing::preview;
use super::{Bridge, Caller, CallerKind, Scope};
use crate::backend::{Backend, RequestAnswer, Sent};
use crate::registry::{IdKind, MessageRef, RequestKind, SourceInfo};
use crate::schema::{
    AccountContent, AccountId, Element, ErrorCode, FetchedMessage, ForwardNode, GroupId, HandleRequestContent,
    ListMembersContent, MessageChain, MuteMemberContent, OpData, OpError, OpKind, Operation, Outgoing,
    SendForwardContent, SourceId, Target,
};

/// Longest group card: QQ's limit is 60 bytes; a little room for encodings.
const MAX_CARD_BYTES: usize = 120;
/// Most nodes one forwarded message may hold (QQ's own limit is 100).
const MAX_FORWARD_NODES: usize = 100;

impl Bridge {
    /// Runs one operation for `caller`. The single entry point for every
    /// consumer; counted and timed for `/metrics`.
    pub async fn execute(&self, caller: &Caller, op: Operation) -> Result<OpData, OpError> {
        let (kind, began) = (op.kind(), std::time::Instant::now());
        let result = self.dispatch(caller, op).await;
        self.metrics.operation(kind, &result, began.elapsed());
        result
    }

    async fn dispatch(&self, caller: &Caller, op: Operation) -> Result<OpData, OpError> {
        let kind = op.kind();
        match op {
            Operation::Reply(c) => {
                let m = self.resolve_reply_key(&c.id)?;
                caller.check(kind, m.account, Scope::of(m.target))?;
                self.send_as(caller, m.account, m.target, &c.message).await
            }
            Operation::SendToGroup(c) => {
                let target = Target::Group { group: c.group };
                self.checked_send(caller, kind, c.account, target, &c.message).await
            }
            Operation::SendToFriend(c) => {
                let target = Target::Friend { friend: c.friend };
                self.checked_send(caller, kind, c.account, target, &c.message).await
            }
            Operation::RecallReceipt(c) => {
                let m = self.resolve_receipt(&c.receipt)?;
                self.recall(caller, kind, m, IdKind::Receipt).await
            }
            Operation::Recall(c) => {
                let m = self.resolve_source(&c.message_source)?.msg;
                self.recall(caller, kind, m, IdKind::Source).await
            }
            Operation::MuteMember(c) => self.mute(caller, kind, c).await,
            Operation::KickMember(c) => {
                let backend = self.group_backend(caller, kind, c.account, c.group)?;
                backend.kick(c.group, c.member, c.reject_rejoin).await?;
                Ok(OpData::Done {})
            }
            Operation::MuteAll(c) => {
                let backend = self.group_backend(caller, kind, c.account, c.group)?;
                backend.mute_all(c.group, c.enable).await?;
                Ok(OpData::Done {})
            }
            Operation::SetMemberCard(c) => {
                if c.card.len() > MAX_CARD_BYTES {
                    return Err(OpError::new(
                        ErrorCode::BadRequest,
                        format!("a card is at most {MAX_CARD_BYTES} bytes"),
                    ));
                }
                let backend = self.group_backend(caller, kind, c.account, c.group)?;
                backend.set_card(c.group, c.member, c.card).await?;
                Ok(OpData::Done {})
            }
            Operation::SetGroupAdmin(c) => {
                let backend = self.group_backend(caller, kind, c.account, c.group)?;
                backend.set_admin(c.group, c.member, c.enable).await?;
                Ok(OpData::Done {})
            }
            Operation::SendPoke(c) => {
                let (account, backend) = self.backend(c.account)?;
                let target = match c.group {
                    Some(group) => Target::Group { group },
                    None => Target::Friend { friend: c.target },
                };
                caller.check(kind, account, Scope::of(target))?;
                // A poke reaches the other side as a message does: it is paced.
                self.pacer(account).send(target, &caller.name, backend.poke(c.group, c.target)).await?;
                Ok(OpData::Done {})
            }
            Operation::GetMessage(c) => self.get_message(caller, kind, &c.message_source).await,
            Operation::SendForward(c) => self.send_forward(caller, kind, c).await,
            Operation::HandleFriendRequest(c) => self.answer(caller, kind, RequestKind::Friend, c).await,
            Operation::HandleGroupInvite(c) => self.answer(caller, kind, RequestKind::GroupInvite, c).await,
            Operation::HandleJoinRequest(c) => self.answer(caller, kind, RequestKind::Join, c).await,
            Operation::ListFriends(c) => self.list_friends(caller, kind, c).await,
            Operation::ListGroups(c) => self.list_groups(caller, kind, c).await,
            Operation::ListMembers(c) => self.list_members(caller, kind, c).await,
            Operation::SimMessage(c) => self.sim_message(caller, kind, c).await,
            Operation::SimEvent(c) => self.sim_event(caller, kind, c).await,
        }
    }

    /// Makes what an operation recorded (IDs, what the sim world did) durable
    /// before it is acknowledged, so the answer survives a crash. A client's
    /// answer waits for the commit (shared with everyone else waiting). A wasm
    /// bot's does not: the commit pipeline is ordered, so anything the bot makes
    /// durable afterwards (a kv write, a timer) is committed with or after it,
    /// and a crash cannot keep the bot's later state while losing the ID.
    async fn commit_before_ack(&self, caller: &Caller, done: &str) -> Result<(), OpError> {
        if caller.kind == CallerKind::WasmBot {
            return Ok(());
        }
        if let Err(e) = self.registry.commit().await {
            let why = crate::error_chain(&e);
            tracing::error!(by = %caller.name, "{done}, but it could not be stored: {why}");
            return Err(OpError::new(ErrorCode::Internal, format!("{done}, but it could not be stored: {why}")));
        }
        Ok(())
    }

    /// `SendToGroup` and `SendToFriend`: the account, then the caller's check.
    async fn checked_send(
        &self,
        caller: &Caller,
        kind: OpKind,
        account: Option<AccountId>,
        target: Target,
        chain: &MessageChain,
    ) -> Result<OpData, OpError> {
        let (account, _) = self.backend(account)?;
        caller.check(kind, account, Scope::of(target))?;
        self.send_as(caller, account, target, chain).await
    }

    /// Sends `chain` from `account`, issues its IDs, commits them, audits it.
    async fn send_as(
        &self,
        caller: &Caller,
        account: AccountId,
        target: Target,
        chain: &MessageChain,
    ) -> Result<OpData, OpError> {
        let (account, backend) = self.backend(Some(account))?;
        let mut message = self.outgoing(account, chain)?;
        self.media.vet(caller.kind, &mut message.elements).await?;
        let text = preview(&message.elements);
        let sent = self.pacer(account).send(target, &caller.name, backend.send(target, message)).await?;
        self.issue_sent(caller, account, target, sent, text, chain).await
    }

    /// A sent message's IDs: issued, committed, audited.
    async fn issue_sent(
        &self,
        caller: &Caller,
        account: AccountId,
        target: Target,
        sent: Sent,
        text: String,
        chain: &MessageChain,
    ) -> Result<OpData, OpError> {
        let msg = MessageRef { account, target, backend_id: sent.backend_id };
        // The account is the sender of what it sends.
        let sender = account.as_user();
        let source_id = self.registry.issue_source(SourceInfo { msg, sender, time: sent.time, text });
        let receipt_id = self.registry.issue_receipt(msg);
        // Acknowledged IDs must survive a crash: commit before answering.
        self.commit_before_ack(caller, "sent").await?;
        let mut audited = Vec::with_capacity(chain.len() + 1);
        audited.push(Element::MessageSource { id: source_id.clone() });
        audited.extend(chain.iter().filter(|e| !matches!(e, Element::MessageSource { .. })).cloned());
        self.bus.publish_outgoing(
            account,
            sent.time,
            Outgoing { target, message: audited, source_id: source_id.clone(), by: caller.name.clone() },
        );
        Ok(OpData::Sent { receipt_id, source_id })
    }

    /// `Recall` (by source ID) and `RecallReceipt` (by receipt), once resolved.
    async fn recall(&self, caller: &Caller, kind: OpKind, m: MessageRef, by: IdKind) -> Result<OpData, OpError> {
        caller.check(kind, m.account, Scope::of(m.target))?;
        let (_, backend) = self.backend(Some(m.account))?;
        backend.recall(m.target, m.backend_id).await.map_err(|e| match (by, e.code) {
            // The receipt resolved, but its message is gone upstream: say so in receipt terms.
            (IdKind::Receipt, ErrorCode::UnknownMessage) => OpError::new(ErrorCode::UnknownReceipt, e.message),
            _ => e,
        })?;
        self.commit_before_ack(caller, "recalled").await?;
        Ok(OpData::Done {})
    }

    /// `MuteMember`: a `group` and `member`, or the sender of `messageSource`
    /// (how an anonymous sender is muted).
    async fn mute(&self, caller: &Caller, kind: OpKind, c: MuteMemberContent) -> Result<OpData, OpError> {
        match (c.group, c.member, c.message_source) {
            (Some(group), Some(member), None) => {
                let backend = self.group_backend(caller, kind, c.account, group)?;
                backend.mute(group, member, c.time).await?;
            }
            (None, None, Some(source)) => {
                let info = self.resolve_source(&source)?;
                let Target::Group { group } = info.msg.target else {
                    return Err(OpError::new(ErrorCode::BadRequest, "only a group message's sender can be muted"));
                };
                if c.account.is_some_and(|a| a != info.msg.account) {
                    return Err(OpError::new(ErrorCode::UnknownMessage, "the message is not of this account"));
                }
                caller.check(kind, info.msg.account, Scope::Group(group))?;
                let (_, backend) = self.backend(Some(info.msg.account))?;
                backend.mute_sender(group, info.msg.backend_id, info.sender, c.time).await?;
            }
            _ => {
                return Err(OpError::new(ErrorCode::BadRequest, "give `group` and `member`, or `messageSource` alone"));
            }
        }
        Ok(OpData::Done {})
    }

    /// The backend of an operation on `group`, after the caller's check.
    fn group_backend(
        &self,
        caller: &Caller,
        kind: OpKind,
        account: Option<AccountId>,
        group: GroupId,
    ) -> Result<std::sync::Arc<dyn Backend>, OpError> {
        let (account, backend) = self.backend(account)?;
        caller.check(kind, account, Scope::Group(group))?;
        Ok(backend)
    }

    /// `GetMessage`: the message as the upstream still has it.
    async fn get_message(&self, caller: &Caller, kind: OpKind, source: &SourceId) -> Result<OpData, OpError> {
        let info = self.resolve_source(source)?;
        let m = info.msg;
        caller.check(kind, m.account, Scope::of(m.target))?;
        let (_, backend) = self.backend(Some(m.account))?;
        let fetched = backend.get_message(m.target, m.backend_id).await?;
        let mut message = Vec::with_capacity(fetched.elements.len() + 2);
        message.push(Element::MessageSource { id: source.clone() });
        if let Some(q) = fetched.quote {
            message.push(self.quote_element(m.account, m.target, q));
        }
        message.extend(fetched.elements);
        Ok(OpData::Message {
            message: FetchedMessage {
                target: m.target,
                sender: fetched.sender,
                sender_name: fetched.sender_name,
                time: fetched.time,
                message,
            },
        })
    }

    /// `SendForward`: each node's chain checked as a message's is, then sent
    /// through the pacer and given IDs like any message.
    async fn send_forward(&self, caller: &Caller, kind: OpKind, c: SendForwardContent) -> Result<OpData, OpError> {
        let target = match (c.group, c.friend) {
            (Some(group), None) => Target::Group { group },
            (None, Some(friend)) => Target::Friend { friend },
            _ => return Err(OpError::new(ErrorCode::BadRequest, "give exactly one of `group` or `friend`")),
        };
        let (account, backend) = self.backend(c.account)?;
        caller.check(kind, account, Scope::of(target))?;
        if c.nodes.is_empty() || c.nodes.len() > MAX_FORWARD_NODES {
            return Err(OpError::new(ErrorCode::BadMessage, format!("a forward holds 1 to {MAX_FORWARD_NODES} nodes")));
        }
        let mut nodes = Vec::with_capacity(c.nodes.len());
        for node in &c.nodes {
            let mut message = self.outgoing(account, &node.message)?;
            if message.quote.is_some() {
                return Err(OpError::new(ErrorCode::BadMessage, "a forward's node cannot quote"));
            }
            self.media.vet(caller.kind, &mut message.elements).await?;
            nodes.push(ForwardNode { message: message.elements, ..node.clone() });
        }
        let text = format!("[forward: {} messages]", nodes.len());
        let chain = vec![Element::Forward { id: String::new(), nodes: c.nodes }];
        let sent = self.pacer(account).send(target, &caller.name, backend.send_forward(target, nodes)).await?;
        self.issue_sent(caller, account, target, sent, text, &chain).await
    }

    async fn answer(
        &self,
        caller: &Caller,
        kind: OpKind,
        request: RequestKind,
        c: HandleRequestContent,
    ) -> Result<OpData, OpError> {
        let req = self.resolve_request(&c.request_id, request)?;
        let scope = if request == RequestKind::Friend { Scope::Private(req.who) } else { Scope::Group(req.group) };
        caller.check(kind, req.account, scope)?;
        let (_, backend) = self.backend(Some(req.account))?;
        let answer = RequestAnswer { token: req.token, accept: c.accept, reason: c.reason };
        match request {
            RequestKind::Friend => backend.answer_friend_request(answer).await?,
            RequestKind::GroupInvite => backend.answer_group_invite(answer).await?,
            RequestKind::Join => backend.answer_join_request(answer).await?,
        }
        Ok(OpData::Done {})
    }

    /// The backend of an account-wide operation, after the caller's check.
    fn account_backend(
        &self,
        caller: &Caller,
        kind: OpKind,
        c: AccountContent,
    ) -> Result<std::sync::Arc<dyn Backend>, OpError> {
        let (account, backend) = self.backend(c.account)?;
        caller.check(kind, account, Scope::Account)?;
        Ok(backend)
    }

    async fn list_friends(&self, caller: &Caller, kind: OpKind, c: AccountContent) -> Result<OpData, OpError> {
        let backend = self.account_backend(caller, kind, c)?;
        Ok(OpData::Friends { friends: backend.friends().await? })
    }

    async fn list_groups(&self, caller: &Caller, kind: OpKind, c: AccountContent) -> Result<OpData, OpError> {
        let backend = self.account_backend(caller, kind, c)?;
        Ok(OpData::Groups { groups: backend.groups().await? })
    }

    async fn list_members(&self, caller: &Caller, kind: OpKind, c: ListMembersContent) -> Result<OpData, OpError> {
        let (account, backend) = self.backend(c.account)?;
        caller.check(kind, account, Scope::Group(c.group))?;
        Ok(OpData::Members { members: backend.members(c.group).await? })
    }
}
