//! What each source says of a node or an edge, keyed by the source's name.
//!
//! Almost every node and edge is seen by one or two sources, and there are tens of thousands of
//! them: a map per item (a `BTreeMap` allocates a node for eleven entries) would hold most of
//! the graph's memory. This is a vector sorted by name, read and written like a map and
//! serialized as one.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Index;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Values by source name, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct BySource<T>(Vec<(String, T)>);

impl<T> Default for BySource<T> {
    fn default() -> Self {
        BySource(Vec::new())
    }
}

impl<T> BySource<T> {
    fn find(&self, source: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(source))
    }

    /// The value of `source`.
    pub fn get(&self, source: &str) -> Option<&T> {
        self.find(source).ok().map(|i| &self.0[i].1)
    }

    /// The value of `source`, to change.
    pub fn get_mut(&mut self, source: &str) -> Option<&mut T> {
        self.find(source).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether `source` has a value.
    pub fn contains_key(&self, source: &str) -> bool {
        self.find(source).is_ok()
    }

    /// Sets the value of `source`.
    pub fn insert(&mut self, source: &str, value: T) {
        match self.find(source) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (source.to_owned(), value)),
        }
    }

    /// Removes the value of `source`.
    pub fn remove(&mut self, source: &str) -> Option<T> {
        self.find(source).ok().map(|i| self.0.remove(i).1)
    }

    /// Source names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Values, in the order of their sources' names.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(_, v)| v)
    }

    /// (source, value), sorted by source.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many sources.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no source has a value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> Index<&str> for BySource<T> {
    type Output = T;

    /// The value of `source`; panics if it has none (like a map's index).
    fn index(&self, source: &str) -> &T {
        match self.get(source) {
            Some(v) => v,
            None => panic!("no value for source `{source}`"),
        }
    }
}

impl<T: Serialize> Serialize for BySource<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for BySource<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = BySource<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of source names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = BySource::default();
                while let Some((k, v)) = a.next_entry::<String, T>()? {
                    out.insert(&k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_writes_and_serializes_like_a_sorted_map() {
        let mut m = BySource::default();
        m.insert("istio", 1);
        m.insert("docker", 2);
        m.insert("istio", 3);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["docker", "istio"]);
        assert_eq!(m["istio"], 3);
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(json, r#"{"docker":2,"istio":3}"#);
        let back: BySource<i32> = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap_or_default();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.remove("docker"), Some(2));
        assert!(!m.contains_key("docker"));
    }
}
