//! Tokenizer for filter expressions. Every token keeps its byte offset so errors can point at it.

use super::FilterError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokKind {
    /// A bare word: keyword, number, address, network, name.
    Word,
    LParen,
    RParen,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `!`
    Not,
    /// Comparison operators, reserved for field predicates (`pkts > 10`).
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    /// End of input; its position is the expression's length.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokKind,
    pub text: &'a str,
    pub pos: usize,
}

/// Characters that end a word: anything the grammar treats as punctuation.
fn is_punct(c: char) -> bool {
    matches!(c, '(' | ')' | '!' | '&' | '|' | '<' | '>' | '=')
}

pub fn tokenize(src: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut toks = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some(&(pos, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
            continue;
        }
        let next_is = |s: &str, ch: char| s[pos + c.len_utf8()..].starts_with(ch);
        let (kind, len) = match c {
            '(' => (TokKind::LParen, 1),
            ')' => (TokKind::RParen, 1),
            '&' if next_is(src, '&') => (TokKind::And, 2),
            '|' if next_is(src, '|') => (TokKind::Or, 2),
            '&' => return Err(FilterError::new("expected '&&'", pos)),
            '|' => return Err(FilterError::new("expected '||'", pos)),
            '!' if next_is(src, '=') => (TokKind::Ne, 2),
            '!' => (TokKind::Not, 1),
            '<' if next_is(src, '=') => (TokKind::Le, 2),
            '<' => (TokKind::Lt, 1),
            '>' if next_is(src, '=') => (TokKind::Ge, 2),
            '>' => (TokKind::Gt, 1),
            '=' if next_is(src, '=') => (TokKind::Eq, 2),
            '=' => (TokKind::Eq, 1),
            _ => {
                let end = src[pos..]
                    .find(|ch: char| ch.is_whitespace() || is_punct(ch))
                    .map_or(src.len(), |n| pos + n);
                (TokKind::Word, end - pos)
            }
        };
        toks.push(Token {
            kind,
            text: &src[pos..pos + len],
            pos,
        });
        while it.peek().is_some_and(|&(p, _)| p < pos + len) {
            it.next();
        }
    }
    toks.push(Token {
        kind: TokKind::End,
        text: "",
        pos: src.len(),
    });
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(TokKind, &str, usize)> {
        tokenize(s)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text, t.pos))
            .collect()
    }

    #[test]
    fn words_and_punctuation() {
        use TokKind::*;
        assert_eq!(
            kinds("tcp&&!(host ::1||net 10.0.0.0/8)"),
            vec![
                (Word, "tcp", 0),
                (And, "&&", 3),
                (Not, "!", 5),
                (LParen, "(", 6),
                (Word, "host", 7),
                (Word, "::1", 12),
                (Or, "||", 15),
                (Word, "net", 17),
                (Word, "10.0.0.0/8", 21),
                (RParen, ")", 31),
                (End, "", 32),
            ]
        );
    }

    #[test]
    fn comparison_operators() {
        use TokKind::*;
        let k: Vec<_> = kinds("a<b <= c>d>=e=f==g!=h")
            .into_iter()
            .map(|t| t.0)
            .filter(|k| *k != Word)
            .collect();
        assert_eq!(k, vec![Lt, Le, Gt, Ge, Eq, Eq, Ne, End]);
    }

    #[test]
    fn mac_and_hyphenated_names_are_single_words() {
        let k = kinds("host 00:11:22:aa:bb:cc proto ipv6-icmp");
        assert_eq!(k[1].1, "00:11:22:aa:bb:cc");
        assert_eq!(k[3].1, "ipv6-icmp");
    }

    #[test]
    fn lone_ampersand_and_pipe_are_errors() {
        let e = tokenize("tcp & udp").unwrap_err();
        assert_eq!((e.msg.as_str(), e.pos), ("expected '&&'", 4));
        let e = tokenize("tcp | udp").unwrap_err();
        assert_eq!((e.msg.as_str(), e.pos), ("expected '||'", 4));
    }

    #[test]
    fn end_token_after_trailing_space_and_unicode() {
        let t = tokenize("héllo  ").unwrap();
        assert_eq!(t[0].text, "héllo");
        assert_eq!(t[1].kind, TokKind::End);
        assert_eq!(t[1].pos, "héllo  ".len());
    }
}
