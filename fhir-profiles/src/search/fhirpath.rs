//! The subset of FHIRPath used by the R4 search parameter expressions of hosted types.
//!
//! An expression is parsed and compiled once against the type of its context (a resource
//! type, or the element type a composite's components are evaluated on), using the schema
//! tables of [`crate::defs::elements`]: every path step is resolved to the JSON properties
//! it reads and the FHIR type of what they hold, choice elements included
//! (`Patient.deceased` reads `deceasedBoolean` as a `boolean` and `deceasedDateTime` as a
//! `dateTime`). Evaluation then walks `serde_json::Value`s with no table lookups, and every
//! result node carries its FHIR type.
//!
//! Supported: path navigation (arrays flatten), `|` union, parentheses, `is`/`as` with a
//! type name (optionally `FHIR.`-qualified), the functions `where(criteria)`, `exists()`,
//! `resolve()` (only to test the target type with `is`), `as(T)`, `is(T)`, `ofType(T)`,
//! `=` and `!=`, `and`, and string (`'email'`) and boolean literals. Anything else is a
//! parse error.

use std::fmt;

use serde_json::Value;

use crate::defs::elements::elements;
use crate::resource_types::is_r4_resource_type;

/// A FHIR type name: a primitive (`dateTime`), a complex type (`CodeableConcept`), a
/// backbone element (`DocumentReference_RelatesTo`) or a resource type.
pub(crate) type FhirType = &'static str;

/// The static type of `resolve()`'s results: the referenced resource, only tested with `is`.
const RESOLVED: FhirType = "(resolved resource)";

/// Why an expression is not in the supported subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

type Result<T> = std::result::Result<T, Error>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// One item of a result collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Item<'a> {
    /// An element of the resource with its FHIR type.
    Node { value: &'a Value, ty: FhirType },
    /// A computed boolean (`exists()`, `and`, `=`, `is`) or a boolean literal.
    Bool(bool),
    /// A string literal.
    Str(&'a str),
    /// What `resolve()` gives for a Reference: the target's resource type, when the
    /// reference tells it.
    Resolved(Option<&'a str>),
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    expr: Expr,
    /// The FHIR types the results may have.
    types: Vec<FhirType>,
}

impl Compiled {
    /// Parses `source` and compiles it for a context of type `context`.
    pub(crate) fn new(source: &str, context: &str) -> Result<Compiled> {
        let context =
            intern_type(context).ok_or_else(|| Error(format!("unknown context type {context}")))?;
        let ast = Parser::new(source)?.parse()?;
        let (expr, types) = compile(&ast, &[context])?;
        Ok(Compiled { expr, types })
    }

    /// The FHIR types the results may have (`boolean` for computed booleans).
    pub(crate) fn result_types(&self) -> &[FhirType] {
        &self.types
    }

    /// Evaluates the expression on `focus`, an element of the context type given to
    /// [`Compiled::new`].
    pub(crate) fn evaluate<'a>(&'a self, focus: &'a Value, ty: FhirType) -> Vec<Item<'a>> {
        let input = [Item::Node { value: focus, ty }];
        let mut out = Vec::new();
        eval(&self.expr, &input, &mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Dot,
    Comma,
    Pipe,
    Eq,
    Ne,
}

fn lex(source: &str) -> Result<Vec<Tok>> {
    let mut toks = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => toks.push(Tok::LParen),
            ')' => toks.push(Tok::RParen),
            '.' => toks.push(Tok::Dot),
            ',' => toks.push(Tok::Comma),
            '|' => toks.push(Tok::Pipe),
            '=' => toks.push(Tok::Eq),
            '!' if chars.peek().map(|(_, c)| *c) == Some('=') => {
                chars.next();
                toks.push(Tok::Ne);
            }
            '\'' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return err(format!("unterminated string at {i}")),
                        Some((_, '\'')) => break,
                        Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                            Some(c @ ('\'' | '"' | '\\' | '/' | '`')) => s.push(c),
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some('f') => s.push('\u{c}'),
                            other => return err(format!("unsupported escape {other:?} at {i}")),
                        },
                        Some((_, c)) => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some((_, c)) = chars.peek().copied() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                toks.push(Tok::Ident(s));
            }
            other => return err(format!("unsupported character {other:?} at {i}")),
        }
    }
    Ok(toks)
}

// ---------------------------------------------------------------------------------------
// Parser

/// The syntax tree.
#[derive(Debug, Clone, PartialEq)]
enum Ast {
    /// An identifier at the start of a path: a child of the focus, or the focus itself when
    /// it names the focus's type (`Patient` in `Patient.name`).
    Ident(String),
    /// `base.name`.
    Member(Box<Ast>, String),
    /// `base.name(args)`, or `name(args)` on the focus when `base` is `None`.
    Call(Option<Box<Ast>>, String, Vec<Ast>),
    Str(String),
    Bool(bool),
    Union(Box<Ast>, Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Equals(Box<Ast>, Box<Ast>, bool),
    Is(Box<Ast>, String),
    As(Box<Ast>, String),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn new(source: &str) -> Result<Parser> {
        Ok(Parser {
            toks: lex(source)?,
            pos: 0,
        })
    }

    fn parse(mut self) -> Result<Ast> {
        let ast = self.expr()?;
        match self.peek() {
            None => Ok(ast),
            Some(t) => err(format!("unexpected {t:?}")),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, tok: Tok) -> Result<()> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            other => err(format!("expected {tok:?}, found {other:?}")),
        }
    }

    fn peek_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == word)
    }

    // expr := eq ('and' eq)*
    fn expr(&mut self) -> Result<Ast> {
        let mut left = self.equality()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.equality()?;
            left = Ast::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    // eq := union (('=' | '!=') union)?
    fn equality(&mut self) -> Result<Ast> {
        let left = self.union()?;
        let negate = match self.peek() {
            Some(Tok::Eq) => false,
            Some(Tok::Ne) => true,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.union()?;
        if matches!(self.peek(), Some(Tok::Eq | Tok::Ne)) {
            return err("chained equality");
        }
        Ok(Ast::Equals(Box::new(left), Box::new(right), negate))
    }

    // union := typed ('|' typed)*
    fn union(&mut self) -> Result<Ast> {
        let mut left = self.typed()?;
        while self.peek() == Some(&Tok::Pipe) {
            self.pos += 1;
            let right = self.typed()?;
            left = Ast::Union(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    // typed := path (('is' | 'as') type)?
    fn typed(&mut self) -> Result<Ast> {
        let path = self.path()?;
        for (word, make) in [
            ("is", Ast::Is as fn(Box<Ast>, String) -> Ast),
            ("as", Ast::As),
        ] {
            if self.peek_keyword(word) {
                self.pos += 1;
                let ty = self.type_name()?;
                return Ok(make(Box::new(path), ty));
            }
        }
        Ok(path)
    }

    /// `name` or `FHIR.name`.
    fn type_name(&mut self) -> Result<String> {
        let Some(Tok::Ident(first)) = self.next() else {
            return err("expected a type name");
        };
        if first == "FHIR" && self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            return match self.next() {
                Some(Tok::Ident(name)) => Ok(name),
                other => err(format!("expected a type name after FHIR., found {other:?}")),
            };
        }
        Ok(first)
    }

    // path := term ('.' invocation)*
    fn path(&mut self) -> Result<Ast> {
        let mut ast = self.term()?;
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let Some(Tok::Ident(name)) = self.next() else {
                return err("expected a name after '.'");
            };
            ast = if self.peek() == Some(&Tok::LParen) {
                let args = self.args()?;
                Ast::Call(Some(Box::new(ast)), name, args)
            } else {
                Ast::Member(Box::new(ast), name)
            };
        }
        Ok(ast)
    }

    fn term(&mut self) -> Result<Ast> {
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(inner)
            }
            Some(Tok::Str(s)) => Ok(Ast::Str(s)),
            Some(Tok::Ident(name)) => {
                if self.peek() == Some(&Tok::LParen) {
                    let args = self.args()?;
                    return Ok(Ast::Call(None, name, args));
                }
                match name.as_str() {
                    "true" => Ok(Ast::Bool(true)),
                    "false" => Ok(Ast::Bool(false)),
                    "and" | "or" | "xor" | "implies" | "is" | "as" | "in" | "contains" | "div"
                    | "mod" => err(format!("unexpected operator {name}")),
                    _ => Ok(Ast::Ident(name)),
                }
            }
            other => err(format!("unexpected {other:?}")),
        }
    }

    fn args(&mut self) -> Result<Vec<Ast>> {
        self.expect(Tok::LParen)?;
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            match self.next() {
                Some(Tok::Comma) => {}
                Some(Tok::RParen) => return Ok(args),
                other => return err(format!("expected ',' or ')', found {other:?}")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Compiler

/// One JSON property a member step reads from elements of type `from`.
#[derive(Debug, Clone)]
struct Step {
    from: FhirType,
    key: &'static str,
    ty: FhirType,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone)]
enum Expr {
    /// The focus.
    This,
    Member(Box<Expr>, Vec<Step>),
    Union(Box<Expr>, Box<Expr>),
    /// `as`, `.as()`, `.ofType()`: the items of the type (or a specialisation of it).
    OfType(Box<Expr>, FhirType),
    /// `is`, `.is()`: whether the single item is of the type.
    Is(Box<Expr>, FhirType),
    Where(Box<Expr>, Box<Expr>),
    Exists(Box<Expr>),
    Resolve(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Equals(Box<Expr>, Box<Expr>, bool),
    Literal(Literal),
}

/// The `'static` name of a type known to the schema tables, or of a resource type.
fn intern_type(name: &str) -> Option<FhirType> {
    let tables = elements();
    if let Some((k, _)) = tables.complex_entry(name) {
        return Some(k);
    }
    if let Some((k, _)) = tables.primitive_entry(name) {
        return Some(k);
    }
    None
}

/// The type named in `is`/`as`/`ofType`: a schema type or an R4 resource type.
fn type_operand(name: &str) -> Result<FhirType> {
    if let Some(t) = intern_type(name) {
        return Ok(t);
    }
    if is_r4_resource_type(name) {
        // Resource types without a table entry cannot occur (every resource is in the
        // schema), but a name is all `is` needs.
        return err(format!(
            "resource type {name} missing from the schema tables"
        ));
    }
    err(format!("unknown type {name}"))
}

/// The type argument of `as(T)`, `is(T)`, `ofType(T)`.
fn type_arg(name: &str, args: &[Ast]) -> Result<FhirType> {
    match args {
        [Ast::Ident(t)] => type_operand(t),
        [Ast::Member(base, t)] if **base == Ast::Ident("FHIR".into()) => type_operand(t),
        _ => err(format!("{name}() takes one type name")),
    }
}

/// Whether a value of type `actual` is a `wanted` (FHIR's primitive specialisations and the
/// Quantity profiles included).
pub(crate) fn is_a(actual: &str, wanted: &str) -> bool {
    actual == wanted
        || match wanted {
            "string" => matches!(actual, "code" | "id" | "markdown"),
            "uri" => matches!(actual, "url" | "canonical" | "oid" | "uuid"),
            "integer" => matches!(actual, "positiveInt" | "unsignedInt"),
            "Quantity" => matches!(
                actual,
                "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity"
            ),
            _ => false,
        }
}

/// The JSON properties `name` reads on an element of type `t`: the property itself, or the
/// alternatives of a choice element (`deceased` → `deceasedBoolean`, `deceasedDateTime`).
fn steps(t: FhirType, name: &str) -> Vec<Step> {
    let Some(complex) = elements().complex(t) else {
        return Vec::new();
    };
    if let Some((key, prop)) = complex.props.get_key_value(name) {
        return vec![Step {
            from: t,
            key: key.as_str(),
            ty: prop.ty.as_str(),
        }];
    }
    let mut out: Vec<Step> = complex
        .props
        .iter()
        .filter(|(key, prop)| {
            key.strip_prefix(name).is_some_and(|suffix| {
                let mut s = suffix.chars();
                let mut ty = prop.ty.chars();
                match (s.next(), ty.next()) {
                    (Some(a), Some(b)) => {
                        a.is_ascii_uppercase()
                            && a.eq_ignore_ascii_case(&b)
                            && s.as_str() == ty.as_str()
                    }
                    _ => false,
                }
            })
        })
        .map(|(key, prop)| Step {
            from: t,
            key: key.as_str(),
            ty: prop.ty.as_str(),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(b.key));
    out
}

fn add_type(types: &mut Vec<FhirType>, t: FhirType) {
    if !types.contains(&t) {
        types.push(t);
    }
}

/// Compiles `ast` for a focus whose items have one of `input`'s types.
fn compile(ast: &Ast, input: &[FhirType]) -> Result<(Expr, Vec<FhirType>)> {
    match ast {
        Ast::Ident(name) => {
            let found = member_steps(input, name);
            if !found.is_empty() {
                let types = step_types(&found);
                return Ok((Expr::Member(Box::new(Expr::This), found), types));
            }
            if input.contains(&name.as_str()) {
                return Ok((Expr::This, input.to_vec()));
            }
            err(format!(
                "{name} is neither an element of {input:?} nor its type"
            ))
        }
        Ast::Member(base, name) => {
            let (base, base_types) = compile(base, input)?;
            let found = member_steps(&base_types, name);
            if found.is_empty() {
                return err(format!("{name} is not an element of {base_types:?}"));
            }
            let types = step_types(&found);
            Ok((Expr::Member(Box::new(base), found), types))
        }
        Ast::Call(base, name, args) => {
            let (base, base_types) = match base {
                Some(b) => compile(b, input)?,
                None => (Expr::This, input.to_vec()),
            };
            compile_call(base, base_types, name, args)
        }
        Ast::Str(s) => Ok((Expr::Literal(Literal::Str(s.clone())), vec!["string"])),
        Ast::Bool(b) => Ok((Expr::Literal(Literal::Bool(*b)), vec!["boolean"])),
        Ast::Union(a, b) => {
            let (a, mut types) = compile(a, input)?;
            let (b, b_types) = compile(b, input)?;
            for t in b_types {
                add_type(&mut types, t);
            }
            Ok((Expr::Union(Box::new(a), Box::new(b)), types))
        }
        Ast::And(a, b) => {
            let (a, _) = compile(a, input)?;
            let (b, _) = compile(b, input)?;
            Ok((Expr::And(Box::new(a), Box::new(b)), vec!["boolean"]))
        }
        Ast::Equals(a, b, negate) => {
            let (a, _) = compile(a, input)?;
            let (b, _) = compile(b, input)?;
            Ok((
                Expr::Equals(Box::new(a), Box::new(b), *negate),
                vec!["boolean"],
            ))
        }
        Ast::Is(base, t) => {
            let (base, _) = compile(base, input)?;
            Ok((Expr::Is(Box::new(base), type_operand(t)?), vec!["boolean"]))
        }
        Ast::As(base, t) => {
            let (base, base_types) = compile(base, input)?;
            of_type(base, &base_types, type_operand(t)?)
        }
    }
}

fn compile_call(
    base: Expr,
    base_types: Vec<FhirType>,
    name: &str,
    args: &[Ast],
) -> Result<(Expr, Vec<FhirType>)> {
    match name {
        "where" => {
            let [criteria] = args else {
                return err("where() takes one argument");
            };
            let (criteria, _) = compile(criteria, &base_types)?;
            Ok((Expr::Where(Box::new(base), Box::new(criteria)), base_types))
        }
        "exists" => {
            if !args.is_empty() {
                return err("exists() with criteria is not supported");
            }
            Ok((Expr::Exists(Box::new(base)), vec!["boolean"]))
        }
        "resolve" => {
            if !args.is_empty() {
                return err("resolve() takes no arguments");
            }
            if !base_types.contains(&"Reference") {
                return err(format!("resolve() on {base_types:?}"));
            }
            Ok((Expr::Resolve(Box::new(base)), vec![RESOLVED]))
        }
        "as" | "ofType" => of_type(base, &base_types, type_arg(name, args)?),
        "is" => Ok((
            Expr::Is(Box::new(base), type_arg(name, args)?),
            vec!["boolean"],
        )),
        other => err(format!("function {other}() is not supported")),
    }
}

fn of_type(base: Expr, base_types: &[FhirType], t: FhirType) -> Result<(Expr, Vec<FhirType>)> {
    if base_types.contains(&RESOLVED) {
        return err("only 'is' applies to resolve()");
    }
    let types: Vec<FhirType> = base_types.iter().copied().filter(|b| is_a(b, t)).collect();
    Ok((Expr::OfType(Box::new(base), t), types))
}

fn member_steps(input: &[FhirType], name: &str) -> Vec<Step> {
    input.iter().flat_map(|t| steps(t, name)).collect()
}

fn step_types(steps: &[Step]) -> Vec<FhirType> {
    let mut types = Vec::new();
    for s in steps {
        add_type(&mut types, s.ty);
    }
    types
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn eval<'a>(expr: &'a Expr, input: &[Item<'a>], out: &mut Vec<Item<'a>>) {
    match expr {
        Expr::This => out.extend_from_slice(input),
        Expr::Member(base, steps) => {
            let owned;
            let base_items = if let Expr::This = **base {
                input
            } else {
                owned = eval_vec(base, input);
                owned.as_slice()
            };
            for item in base_items {
                let Item::Node { value, ty } = *item else {
                    continue;
                };
                let Value::Object(object) = value else {
                    continue;
                };
                for step in steps.iter().filter(|s| s.from == ty) {
                    match object.get(step.key) {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(values)) => out.extend(
                            values
                                .iter()
                                .filter(|v| !v.is_null())
                                .map(|value| Item::Node { value, ty: step.ty }),
                        ),
                        Some(value) => out.push(Item::Node { value, ty: step.ty }),
                    }
                }
            }
        }
        Expr::Union(a, b) => {
            // FHIRPath's union drops duplicates; items of a resource are distinct nodes.
            let start = out.len();
            eval(a, input, out);
            let mut right = Vec::new();
            eval(b, input, &mut right);
            for item in right {
                if !out[start..].iter().any(|i| same_item(i, &item)) {
                    out.push(item);
                }
            }
        }
        Expr::OfType(base, t) => {
            let items = eval_vec(base, input);
            out.extend(items.into_iter().filter(|item| match item {
                Item::Node { ty, .. } => is_a(ty, t),
                Item::Bool(_) => is_a("boolean", t),
                Item::Str(_) => is_a("string", t),
                Item::Resolved(_) => false,
            }));
        }
        Expr::Is(base, t) => {
            let items = eval_vec(base, input);
            if let [item] = items.as_slice() {
                out.push(Item::Bool(match item {
                    Item::Node { ty, .. } => is_a(ty, t),
                    Item::Bool(_) => is_a("boolean", t),
                    Item::Str(_) => is_a("string", t),
                    Item::Resolved(target) => *target == Some(*t),
                }));
            }
        }
        Expr::Where(base, criteria) => {
            let items = eval_vec(base, input);
            for item in items {
                let result = eval_vec(criteria, std::slice::from_ref(&item));
                if truth(&result) == Some(true) {
                    out.push(item);
                }
            }
        }
        Expr::Exists(base) => {
            let items = eval_vec(base, input);
            out.push(Item::Bool(!items.is_empty()));
        }
        Expr::Resolve(base) => {
            let items = eval_vec(base, input);
            for item in items {
                if let Item::Node {
                    value,
                    ty: "Reference",
                } = item
                {
                    out.push(Item::Resolved(reference_type(value)));
                }
            }
        }
        Expr::And(a, b) => {
            let a = truth(&eval_vec(a, input));
            if a == Some(false) {
                out.push(Item::Bool(false));
                return;
            }
            let b = truth(&eval_vec(b, input));
            match (a, b) {
                (_, Some(false)) => out.push(Item::Bool(false)),
                (Some(true), Some(true)) => out.push(Item::Bool(true)),
                _ => {}
            }
        }
        Expr::Equals(a, b, negate) => {
            let a = eval_vec(a, input);
            let b = eval_vec(b, input);
            if a.is_empty() || b.is_empty() {
                return;
            }
            let equal = a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| equal(x, y));
            out.push(Item::Bool(equal != *negate));
        }
        Expr::Literal(Literal::Bool(b)) => out.push(Item::Bool(*b)),
        Expr::Literal(Literal::Str(text)) => out.push(Item::Str(text)),
    }
}

fn eval_vec<'a>(expr: &'a Expr, input: &[Item<'a>]) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    eval(expr, input, &mut out);
    out
}

/// The boolean a collection stands for: empty is unknown, one boolean is itself, one other
/// item is true, more items are an error (unknown).
fn truth(items: &[Item<'_>]) -> Option<bool> {
    match items {
        [Item::Bool(b)] => Some(*b),
        [Item::Node {
            value: Value::Bool(b),
            ty: "boolean",
        }] => Some(*b),
        [_] => Some(true),
        _ => None,
    }
}

fn same_item(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::Node { value: x, .. }, Item::Node { value: y, .. }) => std::ptr::eq(*x, *y),
        _ => a == b,
    }
}

/// FHIRPath `=` on two items: same kind of value and equal content (string-like FHIR
/// primitives compare with string literals).
fn equal(a: &Item<'_>, b: &Item<'_>) -> bool {
    let boolean = |i: &Item<'_>| match i {
        Item::Bool(b) => Some(*b),
        Item::Node {
            value: Value::Bool(b),
            ty: "boolean",
        } => Some(*b),
        _ => None,
    };
    if let (Some(x), Some(y)) = (boolean(a), boolean(b)) {
        return x == y;
    }
    let stringy = |t: &str| is_a(t, "string") || is_a(t, "uri");
    match (a, b) {
        (Item::Str(x), Item::Str(y)) => x == y,
        (Item::Str(x), Item::Node { value, ty }) | (Item::Node { value, ty }, Item::Str(x)) => {
            stringy(ty) && value.as_str() == Some(*x)
        }
        (Item::Node { value: x, ty: tx }, Item::Node { value: y, ty: ty_ }) => {
            let comparable = tx == ty_ || (stringy(tx) && stringy(ty_));
            comparable && x == y
        }
        (Item::Resolved(x), Item::Resolved(y)) => x.is_some() && x == y,
        _ => false,
    }
}

/// The resource type a Reference points to, as far as it tells: from `reference`
/// (`Type/id`, `Type/id/_history/v`, or an absolute URL ending so), else from `type`.
pub(crate) fn reference_type(reference: &Value) -> Option<&str> {
    if let Some(r) = reference.get("reference").and_then(Value::as_str) {
        if let Some((t, _)) = split_reference(r) {
            return Some(t);
        }
    }
    let t = reference.get("type").and_then(Value::as_str)?;
    let t = t.rsplit('/').next().unwrap_or(t);
    is_r4_resource_type(t).then_some(t)
}

/// `(type, id)` of a reference `Type/id` or `Type/id/_history/v`, relative or at the end of
/// an absolute URL; `None` for contained (`#id`), `urn:` and anything else.
pub(crate) fn split_reference(reference: &str) -> Option<(&str, &str)> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let mut segments = reference.rsplit('/');
    let last = segments.next()?;
    let (t, id) = match segments.next() {
        Some("_history") => {
            let id = segments.next()?;
            (segments.next()?, id)
        }
        Some(t) => (t, last),
        None => return None,
    };
    let relative = !reference.contains("://");
    if relative && segments.next().is_some() {
        return None;
    }
    (is_r4_resource_type(t) && is_id(id)).then_some((t, id))
}

/// A FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_on(expr: &str, resource: &Value) -> Vec<Item<'static>> {
        let t = resource["resourceType"].as_str().unwrap();
        let compiled = Compiled::new(expr, t).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let compiled: &'static Compiled = Box::leak(Box::new(compiled));
        let ty = intern_type(t).unwrap();
        // Leaked so the items can outlive this function.
        let resource: &'static Value = Box::leak(Box::new(resource.clone()));
        compiled.evaluate(resource, ty)
    }

    fn values(items: &[Item<'_>]) -> Vec<(String, &'static str)> {
        items
            .iter()
            .map(|i| match i {
                Item::Node { value, ty } => (value.to_string(), *ty),
                Item::Bool(b) => (b.to_string(), "bool"),
                Item::Str(s) => (s.to_string(), "str"),
                Item::Resolved(t) => (format!("{t:?}"), "resolved"),
            })
            .collect()
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "name": [
                {"family": "Chalmers", "given": ["Peter", "James"]},
                {"given": ["Jim"]}
            ],
            "telecom": [
                {"system": "phone", "value": "555"},
                {"system": "email", "value": "p@example.org"}
            ],
            "deceasedDateTime": "2015-02-14T13:42:00+10:00",
            "generalPractitioner": [
                {"reference": "Practitioner/1"},
                {"reference": "http://example.org/fhir/Organization/2/_history/3"},
                {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "type": "Patient"}
            ]
        })
    }

    #[test]
    fn navigates_arrays_and_types_nodes() {
        let p = patient();
        assert_eq!(
            values(&eval_on("Patient.name.given", &p)),
            vec![
                ("\"Peter\"".into(), "string"),
                ("\"James\"".into(), "string"),
                ("\"Jim\"".into(), "string")
            ]
        );
        assert_eq!(
            values(&eval_on("Patient.name.family | Patient.id", &p)),
            vec![("\"Chalmers\"".into(), "string"), ("\"p1\"".into(), "id")]
        );
        assert!(eval_on("Patient.birthDate", &p).is_empty());
    }

    #[test]
    fn choice_elements_and_type_filters() {
        let p = patient();
        assert_eq!(
            values(&eval_on("Patient.deceased", &p)),
            vec![("\"2015-02-14T13:42:00+10:00\"".into(), "dateTime")]
        );
        assert_eq!(eval_on("(Patient.deceased as dateTime)", &p).len(), 1);
        assert_eq!(eval_on("Patient.deceased.as(dateTime)", &p).len(), 1);
        assert_eq!(
            eval_on("Patient.deceased.ofType(FHIR.dateTime)", &p).len(),
            1
        );
        assert!(eval_on("Patient.deceased as boolean", &p).is_empty());
        assert_eq!(
            values(&eval_on("Patient.id is string", &p)),
            vec![("true".into(), "bool")]
        );
    }

    #[test]
    fn booleans_follow_fhirpath_logic() {
        let expr = "Patient.deceased.exists() and Patient.deceased != false";
        let dead = patient();
        assert_eq!(eval_on(expr, &dead), vec![Item::Bool(true)]);
        let alive = json!({"resourceType": "Patient", "deceasedBoolean": false});
        assert_eq!(eval_on(expr, &alive), vec![Item::Bool(false)]);
        let dead_flag = json!({"resourceType": "Patient", "deceasedBoolean": true});
        assert_eq!(eval_on(expr, &dead_flag), vec![Item::Bool(true)]);
        let unknown = json!({"resourceType": "Patient"});
        assert_eq!(eval_on(expr, &unknown), vec![Item::Bool(false)]);
    }

    #[test]
    fn where_filters_by_equality() {
        let p = patient();
        let email = eval_on("Patient.telecom.where(system='email')", &p);
        assert_eq!(email.len(), 1);
        let Item::Node { value, ty } = email[0] else {
            panic!("not a node")
        };
        assert_eq!(ty, "ContactPoint");
        assert_eq!(value["value"], "p@example.org");
        assert!(eval_on("Patient.telecom.where(system='fax')", &p).is_empty());
    }

    #[test]
    fn resolve_is_tests_the_target_type() {
        let p = patient();
        let orgs = eval_on(
            "Patient.generalPractitioner.where(resolve() is Organization)",
            &p,
        );
        assert_eq!(orgs.len(), 1);
        assert_eq!(
            eval_on(
                "Patient.generalPractitioner.where(resolve() is Patient)",
                &p
            )
            .len(),
            1
        );
        assert_eq!(
            split_reference("Patient/1/_history/2"),
            Some(("Patient", "1"))
        );
        assert_eq!(
            split_reference("http://x.org/fhir/Patient/1"),
            Some(("Patient", "1"))
        );
        assert_eq!(split_reference("a/Patient/1"), None);
        assert_eq!(split_reference("#p1"), None);
        assert_eq!(split_reference("Foo/1"), None);
        assert_eq!(split_reference("Patient/"), None);
    }

    #[test]
    fn unsupported_syntax_is_an_error() {
        for bad in [
            "Patient.name[0]",
            "Patient.name.first()",
            "Patient.active or Patient.gender",
            "Patient.nope",
            "Patient.name.given + 'x'",
            "Patient.telecom.where(system = 1)",
            "%resource.id",
            "Patient.name.where(",
            "Patient.managingOrganization.resolve().name",
            "Patient.deceased as NotAType",
            "'unterminated",
            "Patient.name.exists(given)",
        ] {
            assert!(Compiled::new(bad, "Patient").is_err(), "{bad} should fail");
        }
    }
}
