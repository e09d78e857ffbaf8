//! Turning any number of requests into batches of at most N, with ids the caller never sees.

use crate::{BatchError, BatchRequestBody, MAX_BATCH_SIZE, Request, RequestItem};

/// One batch ready to post, with the map from its item ids back to the caller's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<K> {
    pub body: BatchRequestBody,
    keys: Vec<K>,
}

impl<K> Batch<K> {
    /// The caller's key for the item id Graph answered with.
    pub fn key_of(&self, id: &str) -> Option<&K> {
        let index: usize = id.parse().ok()?;
        self.keys.get(index.checked_sub(1)?)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Pairs of (item id, caller's key), in request order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &K)> {
        self.body
            .requests
            .iter()
            .map(|r| r.id.as_str())
            .zip(self.keys.iter())
    }
}

/// Collects independent requests and cuts them into batches of at most `size`, ids "1".."size" in each.
#[derive(Debug)]
pub struct BatchBuilder<K> {
    size: usize,
    pending: Vec<(K, Request)>,
}

impl<K> BatchBuilder<K> {
    pub fn new(size: usize) -> Result<Self, BatchError> {
        if !(1..=MAX_BATCH_SIZE).contains(&size) {
            return Err(BatchError::InvalidBatchSize(size));
        }
        Ok(BatchBuilder {
            size,
            pending: Vec::new(),
        })
    }

    pub fn push(&mut self, key: K, request: Request) {
        self.pending.push((key, request));
    }

    /// All requests pushed so far, as batches in push order.
    pub fn finish(self) -> Vec<Batch<K>> {
        let mut batches = Vec::with_capacity(self.pending.len().div_ceil(self.size));
        let mut iter = self.pending.into_iter().peekable();
        while iter.peek().is_some() {
            let mut requests = Vec::with_capacity(self.size);
            let mut keys = Vec::with_capacity(self.size);
            for (n, (key, request)) in iter.by_ref().take(self.size).enumerate() {
                requests.push(RequestItem::new((n + 1).to_string(), request));
                keys.push(key);
            }
            batches.push(Batch {
                body: BatchRequestBody { requests },
                keys,
            });
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_batch;
    use proptest::prelude::*;

    #[test]
    fn batch_size_must_be_one_to_twenty() {
        assert!(BatchBuilder::<u32>::new(0).is_err());
        assert!(BatchBuilder::<u32>::new(21).is_err());
        assert!(BatchBuilder::<u32>::new(1).is_ok());
    }

    #[test]
    fn ids_map_back_to_keys() {
        let mut b = BatchBuilder::new(2).unwrap();
        for k in ["a", "b", "c"] {
            b.push(k, Request::get(format!("/x/{k}")));
        }
        let batches = b.finish();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].key_of("2"), Some(&"b"));
        assert_eq!(batches[1].key_of("1"), Some(&"c"));
        assert_eq!(batches[1].key_of("2"), None);
        assert_eq!(batches[1].key_of("0"), None);
        assert_eq!(batches[1].key_of("x"), None);
    }

    proptest! {
        #[test]
        fn chunking_keeps_every_request_exactly_once(n in 0usize..200, size in 1usize..=20) {
            let mut b = BatchBuilder::new(size).unwrap();
            for k in 0..n {
                b.push(k, Request::action_post(format!("/deviceManagement/managedDevices/{k}/rotateFileVaultKey")));
            }
            let batches = b.finish();
            prop_assert_eq!(batches.len(), n.div_ceil(size));
            let mut seen = vec![0u8; n];
            for batch in &batches {
                prop_assert!(batch.len() <= size);
                prop_assert_eq!(validate_batch(&batch.body.requests), Ok(()));
                for (id, key) in batch.entries() {
                    prop_assert_eq!(batch.key_of(id), Some(key));
                    let item = batch.body.requests.iter().find(|r| r.id == id).unwrap();
                    let want = format!("/{key}/");
                    prop_assert!(item.url.contains(&want));
                    seen[*key] += 1;
                }
                let wire = serde_json::to_string(&batch.body).unwrap();
                let back: BatchRequestBody = serde_json::from_str(&wire).unwrap();
                prop_assert_eq!(&back, &batch.body);
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }
    }
}
