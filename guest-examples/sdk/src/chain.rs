//! Message chains: a builder, and the text of a chain.

use crate::{At, Element, Image};

/// A message to send, built element by element. `&str` and `String` turn
/// into a one-element chain, so `message.reply("hi")` works.
///
/// ```ignore
/// let chain = Chain::new().at(30003).text(" welcome!").face(14);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chain(pub Vec<Element>);

impl Chain {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Element::Plain(text.into()));
        self
    }

    /// Mentions `user`.
    pub fn at(mut self, user: i64) -> Self {
        self.0.push(Element::At(At { target: user, display: String::new() }));
        self
    }

    pub fn at_all(mut self) -> Self {
        self.0.push(Element::AtAll);
        self
    }

    pub fn face(mut self, id: i64) -> Self {
        self.0.push(Element::Face(id));
        self
    }

    /// An image by `url`: file://, http(s):// or base64:.
    pub fn image(mut self, url: impl Into<String>) -> Self {
        self.0.push(Element::Image(Image { id: String::new(), url: url.into() }));
        self
    }

    pub fn push(mut self, element: Element) -> Self {
        self.0.push(element);
        self
    }

    pub fn elements(&self) -> &[Element] {
        &self.0
    }

    /// The plain text of the chain, its `Plain` elements joined.
    pub fn plain_text(&self) -> String {
        text_of(&self.0)
    }
}

impl From<&str> for Chain {
    fn from(text: &str) -> Self {
        Chain::new().text(text)
    }
}

impl From<String> for Chain {
    fn from(text: String) -> Self {
        Chain::new().text(text)
    }
}

impl From<Vec<Element>> for Chain {
    fn from(elements: Vec<Element>) -> Self {
        Chain(elements)
    }
}

pub(crate) fn text_of(elements: &[Element]) -> String {
    elements
        .iter()
        .filter_map(|e| match e {
            Element::Plain(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}
