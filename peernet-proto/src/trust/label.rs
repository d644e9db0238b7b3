//! A human label for a trusted peer: what a label may hold, checked once
//! when it is made.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// A human label for a trusted peer.
///
/// 1 to [`Label::MAX_LEN`] bytes of UTF-8 with no control characters and
/// no Unicode line or paragraph separators, so that it always fits on one
/// line of the text format; with no leading or trailing whitespace, so
/// that every label has exactly one text form that survives editors which
/// trim lines; and with none of the invisible or bidirectional formatting
/// characters that make text display as other text: every character of
/// Unicode's format category (Cf, as of Unicode 15.0: the "Trojan Source"
/// bidirectional controls U+061C, U+200E, U+200F, U+202A to U+202E and
/// U+2066 to U+2069, the zero-width and invisible U+00AD, U+200B, U+2060
/// to U+2064, U+FEFF, the tag characters U+E0001 and U+E0020 to U+E007F,
/// the Egyptian, shorthand and musical format controls, and the rest)
/// but three kinds: the zero-width joiner and non-joiner (U+200C,
/// U+200D), which emoji and several scripts need, and the prepended
/// concatenation marks (U+0600 to U+0605, U+06DD, U+070F, U+0890,
/// U+0891, U+08E2, U+110BD, U+110CD), which are visible: they span the
/// digits that follow (an Arabic number sign, the end of an ayah). Also
/// refused: U+034F, U+115F, U+1160, U+17B4, U+17B5, U+3164 and U+FFA0,
/// which are not format characters but show as nothing. The variation
/// selectors stay allowed (emoji: `❤️` is U+2764 U+FE0F). (The flags of
/// subdivisions, such as Scotland's, are spelled with tag characters, and
/// so are refused.)
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

/// Why a string is not a [`Label`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidLabel {
    /// The label is the empty string.
    #[error("a label must not be empty")]
    Empty,
    /// The label is longer than [`Label::MAX_LEN`] bytes.
    #[error("a label is at most 128 bytes, this one is {len}")]
    TooLong {
        /// The length of the refused label in bytes.
        len: usize,
    },
    /// The label contains a control character (such as a tab, `\r` or
    /// `\n`) or a Unicode line or paragraph separator.
    #[error("a label must not contain control or line-separator characters")]
    ForbiddenCharacter,
    /// The label starts or ends with whitespace.
    #[error("a label must not start or end with whitespace")]
    SurroundingWhitespace,
    /// The label contains an invisible or bidirectional formatting
    /// character (such as U+202E RIGHT-TO-LEFT OVERRIDE or U+200B ZERO
    /// WIDTH SPACE): it would make a label shown in a list or a log read
    /// as another one.
    #[error("a label must not contain the invisible formatting character U+{:04X}", u32::from(*.0))]
    FormattingCharacter(char),
}

impl Label {
    /// The longest label, in bytes of UTF-8.
    pub const MAX_LEN: usize = 128;

    /// Checks `label` and copies it.
    pub fn new(label: &str) -> Result<Label, InvalidLabel> {
        check_label(label)?;
        Ok(Label(String::from(label)))
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label text, without copying.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn check_label(label: &str) -> Result<(), InvalidLabel> {
    if label.is_empty() {
        return Err(InvalidLabel::Empty);
    }
    if label.len() > Label::MAX_LEN {
        return Err(InvalidLabel::TooLong { len: label.len() });
    }
    // U+2028/U+2029 are not control characters, but some editors and
    // terminals break lines at them, which would make a listed label look
    // like two lines.
    if label
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(InvalidLabel::ForbiddenCharacter);
    }
    if let Some(c) = label.chars().find(|&c| is_invisible_formatting(c)) {
        return Err(InvalidLabel::FormattingCharacter(c));
    }
    let trimmed = label.trim();
    if trimmed.len() != label.len() {
        return Err(InvalidLabel::SurroundingWhitespace);
    }
    Ok(())
}

/// The invisible and bidirectional formatting characters a [`Label`]
/// refuses (see there): Unicode 15.0's format category (Cf) but the two
/// joiners and the visible prepended concatenation marks, and seven
/// invisible characters of other categories.
fn is_invisible_formatting(c: char) -> bool {
    matches!(
        c,
        // format (Cf)
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            // invisible, of other categories
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{3164}'
            | '\u{FFA0}'
            // (unassigned, but in the tag block: refused with it)
            | '\u{E0000}'
            | '\u{E0002}'..='\u{E001F}'
    )
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Label").field(&self.0).finish()
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Label {
    type Error = InvalidLabel;

    fn try_from(label: &str) -> Result<Label, InvalidLabel> {
        Label::new(label)
    }
}

impl TryFrom<String> for Label {
    type Error = InvalidLabel;

    /// Checks `label` and keeps it without copying.
    fn try_from(label: String) -> Result<Label, InvalidLabel> {
        check_label(&label)?;
        Ok(Label(label))
    }
}

impl FromStr for Label {
    type Err = InvalidLabel;

    fn from_str(label: &str) -> Result<Label, InvalidLabel> {
        Label::new(label)
    }
}

impl From<Label> for String {
    fn from(label: Label) -> String {
        label.0
    }
}
