//! What a compiled [`Plan`] reads of an event, worked out once when it is compiled: the
//! pointers of every `when` and column as one trie of their tokens, the envelope fields it
//! names, and whether any column is strict. The evaluator walks an event's JSON along the
//! trie once per message ([`super::tree`]) instead of once per pointer, and reads these
//! instead of going through every route and column again for each message.

use super::compile::{Plan, RoutePlan};
use super::field::{Meta, Source};

/// One token of some pointer, below its parent's.
#[derive(Clone, Debug)]
pub struct Node {
    /// The unescaped token.
    pub token: String,
    /// The token as an array index, when it is one.
    pub index: Option<usize>,
    /// Some pointer ends here: its value is kept.
    pub end: bool,
    /// The nodes one token further, in the order first met.
    pub children: Vec<usize>,
}

/// The plan's reads. Node 0 is the event itself; a child's number is above its parent's.
#[derive(Clone, Debug)]
pub struct Index {
    nodes: Vec<Node>,
    envelope: Vec<String>,
    strict: bool,
}

impl Index {
    /// The reads of `routes`.
    pub fn new(routes: &[RoutePlan]) -> Self {
        let mut index = Self {
            nodes: vec![node(String::new())],
            envelope: Vec::new(),
            strict: false,
        };
        for r in routes {
            if let Some(w) = &r.when {
                index.add(&w.source);
            }
            for c in r.load.iter().flat_map(|l| &l.columns) {
                index.add(&c.source);
                index.strict |= c.strict;
            }
        }
        index
    }

    pub(super) fn add(&mut self, source: &Source) {
        match source {
            Source::Path(p) => {
                let mut at = 0;
                for token in p.tokens() {
                    at = match self.child(at, token) {
                        Some(c) => c,
                        None => {
                            self.nodes.push(node(token.clone()));
                            let c = self.nodes.len() - 1;
                            self.nodes[at].children.push(c);
                            c
                        }
                    };
                }
                self.nodes[at].end = true;
            }
            Source::Meta(Meta::Envelope(name)) if !self.envelope.contains(name) => {
                self.envelope.push(name.clone());
            }
            Source::Meta(_) => {}
        }
    }

    /// The node one `token` below node `at`, when some pointer goes there.
    pub fn child(&self, at: usize, token: &str) -> Option<usize> {
        self.nodes[at]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].token == token)
    }

    /// The nodes, event first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The envelope fields a `when` or a column reads, each once.
    pub fn envelope_fields(&self) -> &[String] {
        &self.envelope
    }

    /// Whether any column is strict ([`super::strict`]).
    pub fn strict(&self) -> bool {
        self.strict
    }
}

fn node(token: String) -> Node {
    let index = super::event::array_index(&token);
    Node {
        token,
        index,
        end: false,
        children: Vec::new(),
    }
}

impl Plan {
    /// Whether a `when` or a column reads the envelope field `name` (`meta = "envelope:NAME"`):
    /// the evaluator keeps only those of an envelope's fields.
    pub fn reads_envelope_field(&self, name: &str) -> bool {
        self.index.envelope_fields().iter().any(|n| n == name)
    }
}
