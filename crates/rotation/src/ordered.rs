//! Work on a sequence spread over threads, its results taken in order: the ledger readers parse
//! and render on every core while one thread reads and another writes, with a few items in flight.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Runs `work` on each input on `threads` threads and calls `take` with the results in the
/// inputs' order. Inputs are drawn on a thread of their own, so reading, working and taking
/// overlap; at most two inputs and two results per thread are held at once. The first error, of
/// the inputs or of `take`, stops the rest and is returned; an input error comes after every
/// result before it was taken.
pub(crate) fn in_order<I, O, E>(
    threads: usize,
    inputs: impl Iterator<Item = Result<I, E>> + Send,
    work: impl Fn(I) -> O + Sync,
    mut take: impl FnMut(O) -> Result<(), E>,
) -> Result<(), E>
where
    I: Send,
    O: Send,
    E: Send,
{
    let threads = threads.max(1);
    std::thread::scope(|s| {
        let work = &work;
        let mut to_work: Vec<SyncSender<I>> = Vec::with_capacity(threads);
        let mut results: Vec<Receiver<O>> = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (give, inbox) = sync_channel::<I>(1);
            let (answer, result) = sync_channel::<O>(1);
            to_work.push(give);
            results.push(result);
            s.spawn(move || {
                for input in inbox {
                    if answer.send(work(input)).is_err() {
                        return;
                    }
                }
            });
        }
        // Input k goes to thread k mod `threads`, so its result is there, in turn.
        let feeder = s.spawn(move || {
            for (k, input) in inputs.enumerate() {
                if to_work[k % to_work.len()].send(input?).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut taken = Ok(());
        for k in 0.. {
            let Ok(result) = results[k % threads].recv() else {
                break;
            };
            taken = take(result);
            if taken.is_err() {
                break;
            }
        }
        // Closing the results stops the workers, and so the feeder.
        drop(results);
        let fed = feeder.join().expect("a reading thread panicked");
        taken.and(fed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_of_the_inputs_whatever_the_threads() {
        for threads in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            in_order::<_, _, ()>(
                threads,
                (0..1000u64).map(Ok),
                // Later inputs finish sooner, so order must be restored, not assumed.
                |k| {
                    std::thread::sleep(std::time::Duration::from_micros((1000 - k) % 7));
                    k * 2
                },
                |r| {
                    seen.push(r);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, (0..1000).map(|k| k * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_input_error_comes_after_every_result_before_it() {
        let mut seen = Vec::new();
        let r = in_order(
            2,
            (0..100u32).map(|k| if k == 40 { Err(k) } else { Ok(k) }),
            |k| k,
            |k| {
                seen.push(k);
                Ok(())
            },
        );
        assert_eq!(r, Err(40));
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_taking_a_result_stops_the_inputs() {
        let drawn = std::sync::atomic::AtomicU32::new(0);
        let r = in_order(
            2,
            (0..1_000_000u32).map(|k| {
                drawn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(k)
            }),
            |k| k,
            |k| if k == 10 { Err(k) } else { Ok(()) },
        );
        assert_eq!(r, Err(10));
        // A few in flight, never the million.
        assert!(drawn.load(std::sync::atomic::Ordering::Relaxed) < 100);
    }

    #[test]
    fn no_input_takes_nothing() {
        let mut taken = 0;
        in_order::<u8, u8, ()>(
            3,
            std::iter::empty(),
            |k| k,
            |_| {
                taken += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(taken, 0);
    }
}
