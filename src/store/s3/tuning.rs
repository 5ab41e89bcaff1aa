//! How an upload is cut into parts and how many of them may be in memory.

use std::time::Duration;

/// The smallest part size (S3 needs 5 MiB for every part but the last).
const MIN_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's largest part and most parts in one upload.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// Parts uploading at once at most; memory use is at most (this + 2) × part size.
const PARTS_IN_FLIGHT: usize = 2;
/// What the process needs besides the parts, kept out of the memory budget.
pub const PROCESS_HEADROOM: u64 = 96 << 20;

/// The one part size of an upload expected to be about `expected` bytes: room
/// for twice that within 10 000 parts, whole MiB, at least 8 MiB. Every part
/// but the last has this size (some stores, e.g. Cloudflare R2, require equal
/// parts); in-flight memory is at most (PARTS_IN_FLIGHT + 2) × this, e.g.
/// 4 × 21 MiB for 100 GiB.
pub fn part_size_for(expected: u64) -> usize {
    const MIB: u64 = 1 << 20;
    let wanted = expected.saturating_mul(2).div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    usize::try_from(wanted).unwrap_or(MAX_PART_SIZE).clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

/// How uploads are cut, paced and retried (see the module documentation).
#[derive(Clone, Debug)]
pub struct UploadTuning {
    /// One part size for every upload instead of [`part_size_for`] (tests scale
    /// a 100 GB upload's parts onto a smaller stream with it).
    pub part_size: Option<usize>,
    /// The slowest link a part must get through: an attempt's timeout is
    /// `base_timeout` plus the part's size at this rate.
    pub min_bytes_per_second: u64,
    pub base_timeout: Duration,
    /// Attempts per part before the upload fails.
    pub attempts: usize,
    /// Bytes the parts in memory may take; `None`: no limit known.
    pub memory_budget: Option<u64>,
}

impl Default for UploadTuning {
    fn default() -> Self {
        UploadTuning {
            part_size: None,
            min_bytes_per_second: 1 << 20,
            base_timeout: Duration::from_secs(30),
            attempts: 5,
            memory_budget: container_memory_limit().map(|limit| limit.saturating_sub(PROCESS_HEADROOM)),
        }
    }
}

impl UploadTuning {
    /// Timeout of one attempt to upload a part of `len` bytes.
    pub fn attempt_timeout(&self, len: usize) -> Duration {
        self.base_timeout + Duration::from_secs_f64(len as f64 / self.min_bytes_per_second.max(1) as f64)
    }
}

/// The container's memory limit (cgroup v2, else v1), when there is one.
fn container_memory_limit() -> Option<u64> {
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        // cgroup v1 reports "no limit" as a huge number.
        .filter(|&limit| limit < 1 << 50)
}

/// How many parts may upload at once in `budget` bytes: `(n + 2) × part` must
/// fit, n at most [`PARTS_IN_FLIGHT`]. `Err` when not even one part can upload
/// while the next is read.
pub fn in_flight_parts(part_size: usize, budget: Option<u64>) -> Result<usize, String> {
    let Some(budget) = budget else { return Ok(PARTS_IN_FLIGHT) };
    let fits = (budget / part_size as u64).saturating_sub(2) as usize;
    if fits == 0 {
        let needed = 3 * part_size as u64 + PROCESS_HEADROOM;
        return Err(format!(
            "parts of {} MiB need a memory limit of at least {} MiB, not {} MiB; \
             raise the Job's memory limit (jobTemplate.resources.limits.memory)",
            part_size >> 20,
            needed.div_ceil(1 << 20),
            (budget + PROCESS_HEADROOM) >> 20
        ));
    }
    Ok(fits.min(PARTS_IN_FLIGHT))
}
