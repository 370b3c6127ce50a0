//! Jenkins' `tree=` filter of the remote API: `a,b[c,d[e]]{0,50}` keeps
//! the named fields (and `_class`) at each level; a selection applies to
//! every element of an array; `{M,N}` keeps elements M..N of an array
//! (`{M,}` from M, `{,N}` up to N, `{N}` element N alone).

use serde_json::{Map, Value};

/// One selected field: its name, what to keep inside it, and the range of
/// an array.
#[derive(Debug, PartialEq)]
struct Field {
    name: String,
    inner: Option<Vec<Field>>,
    range: Option<(Option<usize>, Option<usize>)>,
}

/// Applies `tree` to `value`; no filter (or one that cannot be parsed, which
/// Jenkins would answer with a 400 the fake does not need) keeps everything.
pub(super) fn apply_tree(value: Value, tree: Option<&str>) -> Value {
    let Some(fields) = tree.and_then(parse) else {
        return value;
    };
    select(value, &fields)
}

fn parse(tree: &str) -> Option<Vec<Field>> {
    let chars: Vec<char> = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut at = 0;
    let fields = parse_list(&chars, &mut at)?;
    (at == chars.len()).then_some(fields)
}

fn parse_list(chars: &[char], at: &mut usize) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    loop {
        let start = *at;
        while *at < chars.len() && !matches!(chars[*at], ',' | '[' | ']' | '{' | '}') {
            *at += 1;
        }
        let name: String = chars[start..*at].iter().collect();
        let mut inner = None;
        let mut range = None;
        if chars.get(*at) == Some(&'[') {
            *at += 1;
            inner = Some(parse_list(chars, at)?);
            if chars.get(*at) != Some(&']') {
                return None;
            }
            *at += 1;
        }
        if chars.get(*at) == Some(&'{') {
            *at += 1;
            let start = *at;
            while *at < chars.len() && chars[*at] != '}' {
                *at += 1;
            }
            range = Some(parse_range(&chars[start..*at].iter().collect::<String>())?);
            *at += 1;
        }
        if name.is_empty() {
            return None;
        }
        fields.push(Field { name, inner, range });
        if chars.get(*at) == Some(&',') {
            *at += 1;
        } else {
            return Some(fields);
        }
    }
}

fn parse_range(text: &str) -> Option<(Option<usize>, Option<usize>)> {
    let number = |s: &str| -> Option<Option<usize>> {
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    match text.split_once(',') {
        Some((from, to)) => Some((number(from)?, number(to)?)),
        None => {
            let n: usize = text.parse().ok()?;
            Some((Some(n), Some(n + 1)))
        }
    }
}

fn select(value: Value, fields: &[Field]) -> Value {
    match value {
        Value::Object(map) => {
            let mut kept = Map::new();
            for (key, v) in map {
                if key == "_class" {
                    kept.insert(key, v);
                } else if let Some(field) = fields.iter().find(|f| f.name == key) {
                    kept.insert(key, narrow(v, field));
                }
            }
            Value::Object(kept)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| select(v, fields)).collect()),
        other => other,
    }
}

/// A selected field's value: its range applied, then its own selection.
fn narrow(value: Value, field: &Field) -> Value {
    let value = match (value, field.range) {
        (Value::Array(items), Some((from, to))) => {
            let from = from.unwrap_or(0).min(items.len());
            let to = to.unwrap_or(items.len()).clamp(from, items.len());
            Value::Array(items[from..to].to_vec())
        }
        (value, _) => value,
    };
    match &field.inner {
        Some(inner) => select(value, inner),
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_selections_and_ranges() {
        let doc = json!({
            "_class": "P", "name": "j", "color": "blue",
            "builds": [
                {"_class": "B", "number": 3, "url": "u3", "result": null,
                 "actions": [{"_class": "PA", "parameters": [{"_class": "S", "name": "REF", "value": "r"}]},
                             {"_class": "CA", "causes": []}]},
                {"_class": "B", "number": 2, "url": "u2", "actions": []},
                {"_class": "B", "number": 1, "url": "u1", "actions": []}
            ]
        });
        let tree = "name,builds[number,actions[parameters[name,value]]]{0,2}";
        assert_eq!(
            apply_tree(doc.clone(), Some(tree)),
            json!({
                "_class": "P", "name": "j",
                "builds": [
                    {"_class": "B", "number": 3,
                     "actions": [{"_class": "PA", "parameters": [{"_class": "S", "name": "REF", "value": "r"}]},
                                 {"_class": "CA"}]},
                    {"_class": "B", "number": 2, "actions": []}
                ]
            })
        );
        assert_eq!(
            apply_tree(doc.clone(), Some("builds[number]{1}")),
            json!({"_class": "P", "builds": [{"_class": "B", "number": 2}]})
        );
        assert_eq!(
            apply_tree(doc.clone(), Some("builds[number]{1,}")),
            json!({"_class": "P", "builds": [{"_class": "B", "number": 2}, {"_class": "B", "number": 1}]})
        );
        assert_eq!(
            apply_tree(doc.clone(), Some("name,color")),
            json!({"_class": "P", "name": "j", "color": "blue"})
        );
        assert_eq!(apply_tree(doc.clone(), Some("builds[")), doc);
        assert_eq!(apply_tree(doc.clone(), None), doc);
    }
}
