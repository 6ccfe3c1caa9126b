//! The paged KV cache: a fixed pool of `num_gpu_blocks` blocks of `block_size` tokens, handed out to requests.
//!
//! Plays vLLM's `KVCacheManager` + `BlockPool` without the prefix cache (off by default in the V0 engine that ran on
//! V100s, and off here): a request holds `ceil(tokens / block_size)` blocks for the tokens whose KV has been
//! computed (prompt and generated), every block belongs to exactly one request, and a request's blocks all return
//! to the free queue when it finishes, is aborted or is preempted. A full cache is not an error:
//! [`KvCacheManager::allocate_slots`] answers `false` and the scheduler decides whom to preempt.
//!
//! Usage is `used / num_gpu_blocks`, the V0 `gpu_cache_usage_perc` form that autoscalers target.

use std::collections::{HashMap, VecDeque};

use super::request::RequestId;

/// Block ids and ownership for every request that holds KV memory.
#[derive(Debug)]
pub struct KvCacheManager {
    block_size: u64,
    num_blocks: u64,
    /// Free block ids, oldest-freed first (the eviction order vLLM keeps; it matters only with prefix caching).
    free: VecDeque<u32>,
    /// The block table of each request, in token order.
    tables: HashMap<RequestId, Vec<u32>>,
}

impl KvCacheManager {
    /// A pool of `num_blocks` free blocks of `block_size` tokens.
    pub fn new(num_blocks: u64, block_size: u64) -> Self {
        assert!(block_size > 0, "block_size is validated to be positive");
        Self {
            block_size,
            num_blocks,
            free: (0..num_blocks as u32).collect(),
            tables: HashMap::new(),
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Total blocks in the pool.
    pub fn num_blocks(&self) -> u64 {
        self.num_blocks
    }

    /// Blocks not held by any request.
    pub fn num_free_blocks(&self) -> u64 {
        self.free.len() as u64
    }

    /// Blocks held by requests.
    pub fn num_used_blocks(&self) -> u64 {
        self.num_blocks - self.num_free_blocks()
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.block_size)
    }

    /// Blocks `id` currently holds.
    pub fn blocks_of(&self, id: RequestId) -> u64 {
        self.tables.get(&id).map_or(0, |t| t.len() as u64)
    }

    /// Additional blocks `id` would need to hold `total_tokens` tokens.
    pub fn blocks_needed(&self, id: RequestId, total_tokens: u64) -> u64 {
        self.blocks_for(total_tokens)
            .saturating_sub(self.blocks_of(id))
    }

    /// Grows `id`'s block table so that it covers `total_tokens` tokens. Returns `false`, allocating nothing, when
    /// fewer free blocks remain than needed.
    pub fn allocate_slots(&mut self, id: RequestId, total_tokens: u64) -> bool {
        let needed = self.blocks_needed(id, total_tokens);
        if needed > self.num_free_blocks() {
            return false;
        }
        if needed == 0 {
            return true;
        }
        let table = self.tables.entry(id).or_default();
        table.extend(self.free.drain(..needed as usize));
        true
    }

    /// Returns every block of `id` to the free queue (finish, abort or preemption).
    pub fn free(&mut self, id: RequestId) {
        if let Some(table) = self.tables.remove(&id) {
            // vLLM frees in reverse so that a request's tail blocks are evicted first.
            self.free.extend(table.into_iter().rev());
        }
    }

    /// Fraction of blocks in use, 0..1.
    pub fn usage(&self) -> f64 {
        if self.num_blocks == 0 {
            return 0.0;
        }
        self.num_used_blocks() as f64 / self.num_blocks as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> RequestId {
        RequestId(n)
    }

    #[test]
    fn allocation_rounds_up_to_whole_blocks() {
        let mut kv = KvCacheManager::new(10, 16);
        assert!(kv.allocate_slots(id(1), 17));
        assert_eq!(kv.blocks_of(id(1)), 2);
        assert!(kv.allocate_slots(id(1), 32), "still two blocks");
        assert_eq!(kv.blocks_of(id(1)), 2);
        assert!(kv.allocate_slots(id(1), 33));
        assert_eq!(kv.blocks_of(id(1)), 3);
        assert_eq!(kv.num_used_blocks() + kv.num_free_blocks(), kv.num_blocks());
    }

    #[test]
    fn a_failed_allocation_changes_nothing() {
        let mut kv = KvCacheManager::new(4, 16);
        assert!(kv.allocate_slots(id(1), 48));
        assert!(!kv.allocate_slots(id(2), 32));
        assert_eq!(kv.blocks_of(id(2)), 0);
        assert_eq!(kv.num_free_blocks(), 1);
    }

    #[test]
    fn freeing_returns_every_block_and_usage_to_zero() {
        let mut kv = KvCacheManager::new(100, 16);
        for n in 0..10 {
            assert!(kv.allocate_slots(id(n), 16 * n + 1));
        }
        assert!(kv.usage() > 0.0);
        for n in 0..10 {
            kv.free(id(n));
        }
        assert_eq!(kv.num_free_blocks(), 100);
        assert_eq!(kv.usage(), 0.0);
        // Every block id is back exactly once.
        let mut ids: Vec<u32> = kv.free.iter().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn usage_is_used_over_total() {
        let mut kv = KvCacheManager::new(8, 16);
        assert!(kv.allocate_slots(id(1), 16 * 3));
        assert_eq!(kv.usage(), 3.0 / 8.0);
    }

    #[test]
    fn freeing_an_unknown_request_is_harmless() {
        let mut kv = KvCacheManager::new(8, 16);
        kv.free(id(42));
        assert_eq!(kv.num_free_blocks(), 8);
    }
}
