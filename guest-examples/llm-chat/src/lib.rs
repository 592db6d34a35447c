//! The llm-chat bot. `/ask QUESTION` sends the question, with the chat's last
//! few turns as context, to an OpenAI-compatible `POST {endpoint}/chat/completions`
//! and answers with `choices[0].message.content`. From `NAME.toml`:
//!
//! ```toml
//! allowed_hosts = ["http://127.0.0.1:11434"]
//! [config]
//! endpoint = "http://127.0.0.1:11434/v1"   # Ollama; or https://api.openai.com/v1
//! model = "qwen2.5:7b"
//! turns = "6"                              # messages of context kept per chat
//! [secrets]
//! api_key = { env = "OPENAI_API_KEY" }     # sent as `Authorization: Bearer …`
//! ```
//!
//! On an HTTP error or a refused host it answers one short line saying so.

use botbridge_sdk::{bot, config, http, kv, log, Bot, Event, Message, Scene};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize, Clone)]
struct Turn {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Turn,
}

fn history_key(message: &Message) -> String {
    match &message.scene {
        Scene::Group { group, .. } => format!("history/group/{}", group.id),
        Scene::Friend { sender } | Scene::Temp { sender, .. } => format!("history/user/{}", sender.id),
    }
}

/// The model's answer, or the one line to say instead.
fn ask(history: &[Turn], question: &str) -> Result<String, String> {
    let endpoint = config::get("endpoint").ok_or("llm-chat: no `endpoint` in [config].")?;
    let model = config::get_or("model", "gpt-4o-mini");
    let mut messages = history.to_vec();
    messages.push(Turn { role: "user".into(), content: question.to_owned() });
    let body = json!({ "model": model, "messages": messages });
    let bearer = config::get("api_key").map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    let url = format!("{}/chat/completions", endpoint.trim_end_matches('/'));
    let response = http::post_json(&url, &body, &headers).map_err(|e| {
        log::warn(format!("{url}: {e}"));
        if e.is_refused() {
            "Sorry, the model's host is not allowed (allowed_hosts).".to_owned()
        } else if e.is_timeout() {
            "Sorry, the model took too long to answer.".to_owned()
        } else {
            "Sorry, the model cannot be reached.".to_owned()
        }
    })?;
    if !response.ok() {
        log::warn(format!("{url}: HTTP {}: {}", response.status, response.text()));
        return Err(format!("Sorry, the model answered HTTP {}.", response.status.as_u16()));
    }
    let completion: Completion = response.json().map_err(|e| {
        log::warn(format!("{url}: {e}"));
        "Sorry, the model's answer was not understood.".to_owned()
    })?;
    let answer = completion.choices.into_iter().next().map(|c| c.message.content);
    answer.filter(|a| !a.trim().is_empty()).ok_or_else(|| "Sorry, the model gave no answer.".to_owned())
}

struct LlmChat;

impl Bot for LlmChat {
    fn handle(event: Event) {
        let Event::Message(message) = event else { return };
        let Some(question) = message.command("ask") else { return };
        if question.is_empty() {
            return message.reply_or_log("Usage: /ask QUESTION");
        }
        let key = history_key(&message);
        let mut history: Vec<Turn> = kv::get_json(&key).unwrap_or_default();
        match ask(&history, &question) {
            Ok(answer) => {
                message.reply_or_log(answer.as_str());
                let keep = config::get("turns").and_then(|t| t.parse().ok()).unwrap_or(6usize);
                history.push(Turn { role: "user".into(), content: question });
                history.push(Turn { role: "assistant".into(), content: answer });
                let drop = history.len().saturating_sub(keep);
                history.drain(..drop);
                if let Err(e) = kv::set_json(&key, &history) {
                    log::warn(format!("context not kept: {e}"));
                }
            }
            Err(line) => message.reply_or_log(line),
        }
    }
}

bot!(LlmChat);
