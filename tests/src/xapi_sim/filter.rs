//! The expressions of `<class>.get_all_records_where`, as sm writes them:
//! `field "host" = "OpaqueRef:…" and field "SR" = "OpaqueRef:…"`; also `or`, `not`,
//! `<>`, parentheses, `true` and `false`.

use std::collections::BTreeMap;

use xenapi::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(bool),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Eq(Operand, Operand),
    Ne(Operand, Operand),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Field(String),
    Literal(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Str(String),
    Word(String),
    Eq,
    Ne,
    Open,
    Close,
}

pub fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(t) => Err(format!("unexpected {t:?} after a complete expression")),
    }
}

impl Expr {
    pub fn matches(&self, record: &BTreeMap<String, Value>) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Not(e) => !e.matches(record),
            Expr::And(a, b) => a.matches(record) && b.matches(record),
            Expr::Or(a, b) => a.matches(record) || b.matches(record),
            Expr::Eq(a, b) => a.text(record) == b.text(record),
            Expr::Ne(a, b) => a.text(record) != b.text(record),
        }
    }
}

impl Operand {
    fn text(&self, record: &BTreeMap<String, Value>) -> String {
        match self {
            Operand::Literal(s) => s.clone(),
            Operand::Field(name) => match record.get(name) {
                Some(Value::String(s) | Value::DateTime(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Int(i)) => i.to_string(),
                Some(Value::Int32(i)) => i.to_string(),
                Some(Value::Double(d)) => d.to_string(),
                _ => String::new(),
            },
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '=' => {
                chars.next();
                out.push(Token::Eq);
            }
            '<' => {
                chars.next();
                if chars.next() != Some('>') {
                    return Err("'<' must be followed by '>'".into());
                }
                out.push(Token::Ne);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err("unterminated string".into()),
                        },
                        Some(c) => s.push(c),
                    }
                }
                out.push(Token::Str(s));
            }
            c if c.is_ascii_alphabetic() => {
                // xapi's lexer (db_filter_lex.mll) knows only its keywords, as fixed
                // strings with no identifier rule: `andfield` is `and` then `field`, as
                // stock sm's `SR.from_uuid` writes it.
                let rest: String = chars.clone().collect();
                let Some(word) = ["field", "and", "or", "not", "true", "false"]
                    .into_iter()
                    .find(|k| rest.starts_with(k))
                else {
                    return Err(format!("unexpected word at {rest:?}"));
                };
                for _ in 0..word.len() {
                    chars.next();
                }
                out.push(Token::Word(word.to_string()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek_word("true") {
            self.at += 1;
            return Ok(Expr::Const(true));
        }
        if self.peek_word("false") {
            self.at += 1;
            return Ok(Expr::Const(false));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let e = self.or()?;
            return match self.next() {
                Some(Token::Close) => Ok(e),
                _ => Err("missing ')'".into()),
            };
        }
        let left = self.operand()?;
        let op = self.next();
        let right = self.operand()?;
        match op {
            Some(Token::Eq) => Ok(Expr::Eq(left, right)),
            Some(Token::Ne) => Ok(Expr::Ne(left, right)),
            other => Err(format!("expected '=' or '<>', found {other:?}")),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Word(w)) if w == "field" => match self.next() {
                Some(Token::Str(name)) => Ok(Operand::Field(name)),
                other => Err(format!("expected a quoted field name, found {other:?}")),
            },
            Some(Token::Str(s)) => Ok(Operand::Literal(s)),
            other => Err(format!(
                "expected field \"name\" or a quoted value, found {other:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    #[test]
    fn sm_style_expression_selects_by_host_and_sr() {
        let e = parse(r#"field "host" = "OpaqueRef:h1" and field "SR" = "OpaqueRef:s1""#).unwrap();
        assert!(e.matches(&rec(&[("host", "OpaqueRef:h1"), ("SR", "OpaqueRef:s1")])));
        assert!(!e.matches(&rec(&[("host", "OpaqueRef:h2"), ("SR", "OpaqueRef:s1")])));
        // Stock SR.from_uuid joins its two halves with no blank: "… andfield …".
        let joined =
            parse(r#"field "SR" = "OpaqueRef:s1" andfield "host" = "OpaqueRef:h1""#).unwrap();
        assert!(joined.matches(&rec(&[("host", "OpaqueRef:h1"), ("SR", "OpaqueRef:s1")])));
    }

    #[test]
    fn precedence_parentheses_not_and_escapes() {
        let e = parse(r#"not (field "a" = "x" or "y\"z" = field "b") and true"#).unwrap();
        assert!(e.matches(&rec(&[("a", "q"), ("b", "q")])));
        assert!(!e.matches(&rec(&[("a", "q"), ("b", "y\"z")])));
        assert!(
            parse(r#"field "a" <> "b""#)
                .unwrap()
                .matches(&rec(&[("a", "c")]))
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "field",
            r#"field "a" ="#,
            r#"("a" = "b""#,
            "\"open",
            "a & b",
            r#""a" = "b" "c""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
