//! Names of every Redis key the service writes.

use crate::domain::{Channel, RequestId};

/// The key layout under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// A prefix may not contain braces: they would change the keys' hash slots.
    pub fn new(prefix: &str) -> Result<Self, String> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(format!(
                "the Redis key prefix '{prefix}' must be non-empty and free of braces"
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The sorted set of jobs, scored by the time (ms) a job may next be taken.
    pub fn queue(&self) -> String {
        format!("{}:queue", self.prefix)
    }

    /// The hash describing one request.
    pub fn request(&self, id: RequestId) -> String {
        format!("{}:{{{id}}}:request", self.prefix)
    }

    /// The hash of finished device entries, by device index.
    pub fn entries(&self, id: RequestId) -> String {
        format!("{}:{{{id}}}:entries", self.prefix)
    }

    /// The hash of one device's deflated chunks, by chunk index.
    pub fn device(&self, id: RequestId, index: usize) -> String {
        format!("{}:{{{id}}}:device:{index}", self.prefix)
    }

    /// Points from a channel and a hashed phone number to its current request.
    pub fn owner(&self, channel: Channel, owner_hash: &str) -> String {
        format!("{}:owner:{}:{owner_hash}", self.prefix, channel.as_str())
    }

    /// Every key a request with `devices` devices can have.
    pub fn all_of(&self, id: RequestId, devices: usize) -> Vec<String> {
        let mut keys = vec![self.request(id), self.entries(id)];
        keys.extend((0..devices).map(|i| self.device(id, i)));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_share_one_hash_tag() {
        let keys = Keys::new("insight").unwrap();
        let id = RequestId::new();
        let tag = format!("{{{id}}}");
        for key in keys.all_of(id, 3) {
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert!(key.contains(&tag), "{key}");
        }
    }

    #[test]
    fn braces_in_the_prefix_are_refused() {
        assert!(Keys::new("a{b}").is_err());
        assert!(Keys::new("").is_err());
    }
}
