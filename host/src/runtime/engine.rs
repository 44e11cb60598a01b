//! The wasmtime engine: component model, async calls, epoch deadlines, and the pooling instance
//! allocator when this machine can reserve its address space (probed, with a fallback).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;

/// An engine and how it allocates instances.
#[derive(Clone)]
pub struct PluginEngine {
    pub engine: Engine,
    /// True when the pooling allocator is in use.
    pub pooling: bool,
    /// Milliseconds per epoch tick.
    pub tick_ms: u64,
}

/// Largest linear memory any plugin instance may have in the pool, whatever its own cap.
const POOL_MAX_MEMORY: usize = 4 << 30;

/// Bytes of each pooled linear memory, table and async stack kept resident between requests.
const KEEP_RESIDENT_MEMORY: usize = 4 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
const KEEP_RESIDENT_STACK: usize = 256 << 10;

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

impl PluginEngine {
    /// Builds the engine: pooling when asked for and available, otherwise on-demand allocation.
    pub fn new(runtime: &RuntimeConfig) -> wasmtime::Result<Self> {
        let tick_ms = runtime.epoch_tick_ms.max(1);
        if runtime.pooling {
            match Self::pooling_engine(runtime.max_instances) {
                Ok(engine) => return Ok(Self { engine, pooling: true, tick_ms }),
                Err(e) => tracing::warn!(error = %e, "pooling allocator unavailable, allocating instances on demand"),
            }
        }
        Ok(Self { engine: Engine::new(&base_config())?, pooling: false, tick_ms })
    }

    fn pooling_engine(max_instances: u32) -> wasmtime::Result<Engine> {
        let n = max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            // A Rust component holds a few core instances (the program and its glue shims).
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(POOL_MAX_MEMORY)
            // Reset what a request dirtied with memset rather than madvise: madvise costs a TLB
            // shootdown across cores and page faults on the next request, several times the cost
            // of a small plugin's whole call.
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .async_stack_keep_resident(KEEP_RESIDENT_STACK)
            // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), reset only the pages a request dirtied.
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Copy the (small) data segments in at instantiation instead of mapping the image
        // copy-on-write: each CoW fault and each re-mapping costs a TLB shootdown on every core.
        config.memory_init_cow(false);
        Engine::new(&config)
    }

    /// Starts the clock that advances the epoch; it stops when the returned guard is dropped.
    pub fn start_epoch_clock(&self) -> EpochClock {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = self.engine.clone();
        let tick = Duration::from_millis(self.tick_ms);
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wasmpacs-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch thread");
        EpochClock { stop }
    }

    /// Epoch ticks that make up `timeout_ms` (at least one).
    pub fn ticks_for(&self, timeout_ms: u64) -> u64 {
        timeout_ms.div_ceil(self.tick_ms).max(1)
    }
}

/// Keeps the epoch clock running while alive.
pub struct EpochClock {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
