//! The trust list: the explicit set of peers this node will talk to.
//!
//! A [`TrustList`] maps each trusted [`PeerId`] to an optional human
//! [`Label`]. It is ordered by PeerId, so iteration and the text form are
//! deterministic.
//!
//! # Text format, version 1
//!
//! The runtime crates persist a trust list with [`TrustList::to_text`] and
//! load it with [`TrustList::from_text`]; this format is a stable contract.
//!
//! ```text
//! peernet-trust-list v1
//! <64 lowercase hex PeerId>[ <label>]
//! ...
//! end <N>
//! ```
//!
//! Precisely:
//!
//! - The text is UTF-8 and made of lines. **Every line, including the last,
//!   ends with a newline** (`\n`). A line may instead end with `\r\n`; the
//!   `\r` is removed before the line is read, so a list edited on Windows
//!   still loads. [`TrustList::to_text`] always writes `\n`.
//! - Line 1 is exactly `peernet-trust-list v1`. Anything else, including a
//!   different version, a leading byte-order mark or an empty text, is
//!   [`TrustListErrorKind::MissingHeader`].
//! - Each following line is one of:
//!   - an **entry**: the PeerId as exactly 64 lowercase hex digits (the
//!     [`PeerId`] `Display` form), then optionally one space and a label.
//!     The label is the rest of the line and must be a valid [`Label`]
//!     (1 to 128 bytes, no control or line-separator characters, no
//!     leading or trailing whitespace). So `<key>` alone has no label, while
//!     `<key> ` (a trailing space) is an empty label and is refused;
//!   - a **blank line** (empty) or a **comment** (starting with `#`), both
//!     ignored. [`TrustList::to_text`] writes neither;
//!   - the **end line** `end <N>`: the word `end`, one space and `N` in
//!     decimal without sign or leading zeros (`0` is written `0`). `N` must
//!     equal the number of entries. Any line that is `end` or starts with
//!     `end ` is read as an end line (it cannot be an entry, since `n` is
//!     not a hex digit).
//! - The end line is the last line: nothing at all may follow its newline,
//!   not even a blank line or a comment.
//! - A PeerId may appear at most once. Entries may appear in any order;
//!   [`TrustList::to_text`] writes them in ascending PeerId order (which is
//!   also ascending order of their hex text).
//!
//! The header and the counted end line exist so that damage is never
//! mistaken for a smaller list: an empty file, a file cut at any byte
//! (including exactly at a line boundary), a file with a line deleted or a
//! file of another version is always an error, never a shorter or empty
//! [`TrustList`]. A caller that gets an error should refuse to start rather
//! than fall back to an empty list.
//!
//! Errors carry the 1-based number of the offending line and a typed
//! [`TrustListErrorKind`]. Lines are checked in order and the first problem
//! is reported.

use alloc::collections::btree_map::{self, BTreeMap};
use alloc::string::String;
use core::fmt::Write as _;
use core::iter::FusedIterator;
use core::str::FromStr;

use crate::identity::{InvalidPeerId, PeerId};

mod label;
pub use label::{InvalidLabel, Label};

/// The first line of the version 1 text format.
pub const TRUST_LIST_HEADER: &str = "peernet-trust-list v1";

/// The set of trusted peers, each with an optional [`Label`].
///
/// Ordered by [`PeerId`] (bytewise, which is also the order of the hex
/// text), so iteration and [`TrustList::to_text`] are deterministic.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct TrustList {
    peers: BTreeMap<PeerId, Option<Label>>,
}

impl TrustList {
    /// An empty list: trusts nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `peer` with `label`, replacing the label if `peer` is already
    /// trusted (`None` then removes its label).
    ///
    /// Returns true if `peer` was not trusted before.
    pub fn insert(&mut self, peer: PeerId, label: Option<Label>) -> bool {
        self.peers.insert(peer, label).is_none()
    }

    /// Stops trusting `peer`. Returns true if it was trusted.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        self.peers.remove(peer).is_some()
    }

    /// Whether `peer` is trusted.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Whether the raw key `raw` is trusted, looked up before (and without)
    /// decoding it as a point: an untrusted key costs one lookup.
    pub(crate) fn contains_raw(&self, raw: &[u8; crate::identity::PEER_ID_LEN]) -> bool {
        self.peers.contains_key(&PeerId::lookup_key(*raw))
    }

    /// The label of `peer`, if it is trusted and has one.
    pub fn label(&self, peer: &PeerId) -> Option<&Label> {
        self.peers.get(peer).and_then(Option::as_ref)
    }

    /// The trusted peers and their labels, in ascending PeerId order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.peers.iter(),
        }
    }

    /// The number of trusted peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The list in the version 1 text format (see the [module
    /// docs](self)): header, one line per peer in ascending PeerId order,
    /// `end <N>`, each line ending in `\n`, with no comments or blank
    /// lines.
    pub fn to_text(&self) -> String {
        // Header, end line, and per entry: key, space, label, newline.
        let capacity = TRUST_LIST_HEADER.len()
            + 32
            + self
                .peers
                .values()
                .map(|label| 66 + label.as_ref().map_or(0, |l| l.as_str().len()))
                .sum::<usize>();
        let mut out = String::with_capacity(capacity);
        out.push_str(TRUST_LIST_HEADER);
        out.push('\n');
        for (peer, label) in &self.peers {
            // Writing to a String cannot fail; the results are ignored
            // rather than unwrapped so that this stays panic-free.
            let _ = write!(out, "{peer}");
            if let Some(label) = label {
                out.push(' ');
                out.push_str(label.as_str());
            }
            out.push('\n');
        }
        let _ = writeln!(out, "end {}", self.peers.len());
        out
    }

    /// Parses the version 1 text format (see the [module docs](self)).
    ///
    /// Never returns a partial list: any damage, including truncation at
    /// any point, is an error naming the first bad line.
    pub fn from_text(text: &str) -> Result<TrustList, TrustListError> {
        let mut lines = Lines::new(text);

        // The header is checked before termination so that a text that is
        // not a trust list at all is reported as such, not as truncated.
        match lines.next() {
            Some(line) if line.text.starts_with('\u{feff}') => {
                return Err(TrustListError::new(1, TrustListErrorKind::ByteOrderMark));
            }
            Some(line) if line.text == TRUST_LIST_HEADER && line.terminated => {}
            Some(line) if line.text == TRUST_LIST_HEADER => {
                return Err(TrustListError::new(
                    line.number,
                    TrustListErrorKind::UnterminatedLine,
                ));
            }
            _ => return Err(TrustListError::new(1, TrustListErrorKind::MissingHeader)),
        }

        let mut peers = BTreeMap::new();
        let mut first_lines = BTreeMap::new();
        loop {
            let Some(line) = lines.next() else {
                return Err(TrustListError::new(
                    lines.number + 1,
                    TrustListErrorKind::MissingEnd,
                ));
            };
            let error = |kind| TrustListError::new(line.number, kind);
            // A line without its newline was cut short; its content cannot
            // be trusted even if it happens to parse.
            if !line.terminated {
                return Err(error(TrustListErrorKind::UnterminatedLine));
            }
            if line.text.is_empty() || line.text.starts_with('#') {
                continue;
            }
            if let Some(declared) = parse_end_line(line.text) {
                let declared = declared.ok_or_else(|| error(TrustListErrorKind::InvalidEnd))?;
                if declared != peers.len() {
                    return Err(error(TrustListErrorKind::CountMismatch {
                        declared,
                        found: peers.len(),
                    }));
                }
                if let Some(extra) = lines.next() {
                    return Err(TrustListError::new(
                        extra.number,
                        TrustListErrorKind::TrailingContent,
                    ));
                }
                return Ok(TrustList { peers });
            }

            let (key, label) = match line.text.split_once(' ') {
                Some((key, label)) => (key, Some(label)),
                None => (line.text, None),
            };
            let peer =
                PeerId::from_str(key).map_err(|e| error(TrustListErrorKind::InvalidKey(e)))?;
            let label = label
                .map(Label::new)
                .transpose()
                .map_err(|e| error(TrustListErrorKind::InvalidLabel(e)))?;
            if let Some(&first_line) = first_lines.get(&peer) {
                return Err(error(TrustListErrorKind::DuplicateKey { first_line }));
            }
            first_lines.insert(peer, line.number);
            peers.insert(peer, label);
        }
    }
}

/// `None` if `line` is not an end line; `Some(None)` if it is a malformed
/// one; `Some(Some(n))` for `end <n>`.
fn parse_end_line(line: &str) -> Option<Option<usize>> {
    if line == "end" {
        return Some(None);
    }
    let count = line.strip_prefix("end ")?;
    // `usize::from_str` would also take `+3`; leading zeros are refused
    // too, so that a count has exactly one text form.
    let canonical = !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit())
        && (count == "0" || !count.starts_with('0'));
    if !canonical {
        return Some(None);
    }
    Some(count.parse().ok())
}

/// One line of the text: its 1-based number, its content without the line
/// ending, and whether it had one.
struct Line<'a> {
    number: usize,
    text: &'a str,
    terminated: bool,
}

/// Splits text into [`Line`]s. Unlike [`str::lines`] it reports whether the
/// last line was terminated, which is how truncation is detected.
struct Lines<'a> {
    rest: &'a str,
    /// The number of lines returned so far.
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            rest: text,
            number: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        self.number += 1;
        let line = match self.rest.split_once('\n') {
            Some((text, rest)) => {
                self.rest = rest;
                Line {
                    number: self.number,
                    text: text.strip_suffix('\r').unwrap_or(text),
                    terminated: true,
                }
            }
            None => Line {
                number: self.number,
                text: core::mem::take(&mut self.rest),
                terminated: false,
            },
        };
        Some(line)
    }
}

impl FromIterator<PeerId> for TrustList {
    /// A list trusting every peer in `peers`, none labelled.
    fn from_iter<I: IntoIterator<Item = PeerId>>(peers: I) -> Self {
        let mut list = TrustList::new();
        list.extend(peers);
        list
    }
}

impl FromIterator<(PeerId, Option<Label>)> for TrustList {
    /// A list of the given peers and labels; a later label for the same
    /// peer replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (PeerId, Option<Label>)>>(entries: I) -> Self {
        let mut list = TrustList::new();
        list.extend(entries);
        list
    }
}

impl Extend<PeerId> for TrustList {
    /// Trusts every peer in `peers`. Peers already trusted keep their
    /// labels.
    fn extend<I: IntoIterator<Item = PeerId>>(&mut self, peers: I) {
        for peer in peers {
            self.peers.entry(peer).or_insert(None);
        }
    }
}

impl Extend<(PeerId, Option<Label>)> for TrustList {
    /// [`TrustList::insert`]s every entry in turn.
    fn extend<I: IntoIterator<Item = (PeerId, Option<Label>)>>(&mut self, entries: I) {
        for (peer, label) in entries {
            self.insert(peer, label);
        }
    }
}

impl<'a> IntoIterator for &'a TrustList {
    type Item = (&'a PeerId, Option<&'a Label>);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over a [`TrustList`]'s peers and labels, in ascending PeerId
/// order; see [`TrustList::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    inner: btree_map::Iter<'a, PeerId, Option<Label>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a PeerId, Option<&'a Label>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next()
            .map(|(peer, label)| (peer, label.as_ref()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner
            .next_back()
            .map(|(peer, label)| (peer, label.as_ref()))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

/// Why a text is not a trust list: the first bad line and what is wrong
/// with it, said as `line 2: invalid key: …` (which file is the reader's
/// to say: a data directory's names it, `trust list /var/lib/node/trust:
/// line 2: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct TrustListError {
    /// The 1-based number of the offending line. For a missing end line it
    /// is the line just after the last one.
    pub line: usize,
    /// What is wrong.
    pub kind: TrustListErrorKind,
}

impl TrustListError {
    fn new(line: usize, kind: TrustListErrorKind) -> Self {
        TrustListError { line, kind }
    }
}

/// What is wrong with a line of a trust list; see [`TrustListError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustListErrorKind {
    /// The first line is not `peernet-trust-list v1` (or the text is
    /// empty): not a trust list, or another version.
    #[error("expected the header `peernet-trust-list v1`")]
    MissingHeader,
    /// The text starts with a byte-order mark (U+FEFF), which some
    /// editors put before UTF-8: the header is there, behind it.
    #[error("the file starts with a byte-order mark: save it as UTF-8 without one")]
    ByteOrderMark,
    /// An entry's key is not a valid PeerId.
    #[error("invalid key: {0}")]
    InvalidKey(InvalidPeerId),
    /// An entry repeats a key already listed.
    #[error("duplicate key, first listed on line {first_line}")]
    DuplicateKey {
        /// The line where the key first appears.
        first_line: usize,
    },
    /// An entry's label is not a valid [`Label`].
    #[error("invalid label: {0}")]
    InvalidLabel(InvalidLabel),
    /// The text ends, at a line boundary, before the end line: the list is
    /// truncated.
    #[error("missing `end <N>` line: the list is truncated")]
    MissingEnd,
    /// A line is `end` or starts with `end ` but is not `end <N>` with `N`
    /// in canonical decimal.
    #[error("malformed end line, expected `end <N>`")]
    InvalidEnd,
    /// The end line's count is not the number of entries: an entry was
    /// lost or added.
    #[error("the end line declares {declared} entries but the list has {found}")]
    CountMismatch {
        /// The count on the end line.
        declared: usize,
        /// The number of entries actually listed.
        found: usize,
    },
    /// Something follows the end line.
    #[error("content after the end line")]
    TrailingContent,
    /// The text ends in the middle of this line (it has no final newline):
    /// the list is truncated.
    #[error("line has no newline: the list is truncated")]
    UnterminatedLine,
}

#[cfg(test)]
mod tests;
