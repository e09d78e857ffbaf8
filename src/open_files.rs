//! How many tenants a run over many tenants works at once when not told: every tenant up to
//! [`DEFAULT_TENANTS`], fewer where the open-file limit is lower. Each tenant in flight keeps its
//! ledger open and, as it ends, opens its checkpoint and a reader of the ledger.

/// Tenants in flight by default: 2,000 tenants of 1,000 devices hold under 1 GB together
/// (docs/BENCHMARKS.md, "Two thousand tenants").
pub const DEFAULT_TENANTS: usize = 2_000;
/// Files a tenant in flight may hold at once.
const PER_TENANT: u64 = 4;
/// Files kept for the rest of the run: the manifest, the logs, the connections.
const RESERVE: u64 = 256;

/// Raises the soft limit on open files to the hard one (many systems start a process at 1,024,
/// macOS at 256) and returns the tenants that fit in it.
pub fn tenants_that_fit() -> usize {
    #[cfg(unix)]
    {
        let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
        usize::try_from(limit.saturating_sub(RESERVE) / PER_TENANT)
            .unwrap_or(usize::MAX)
            .max(1)
    }
    // Windows bounds handles by memory, not by a per-process count.
    #[cfg(not(unix))]
    {
        usize::MAX
    }
}

/// The tenants to work at once: `asked`, or the default bounded by the open-file limit. An
/// asked number above that limit is kept, and said.
pub fn concurrency(asked: Option<usize>, tenants: usize) -> usize {
    let fit = tenants_that_fit();
    match asked {
        Some(n) => {
            if n.min(tenants) > fit {
                tracing::warn!(
                    "{n} tenants in flight may open more files than this process may ({fit} tenants fit); some may stop on \"too many open files\" and wait for resume"
                );
            }
            n
        }
        None => DEFAULT_TENANTS.min(fit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asked_number_is_kept() {
        assert_eq!(concurrency(Some(7), 100), 7);
    }

    #[test]
    fn the_default_is_at_most_the_default_tenants_and_at_least_one() {
        let n = concurrency(None, 10_000);
        assert!((1..=DEFAULT_TENANTS).contains(&n), "{n}");
    }
}
