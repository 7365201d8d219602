//! Looking at a few thousand things (a release's files, its blobs in the
//! cache) on both cores: one half on a scoped thread, the other on the
//! caller's.

/// `look` at `items`: at once on its two halves when there are at least
/// `from` of them (the results put together by `join`, first half first),
/// else in one call. A panic on the other thread is raised here.
pub fn in_halves<T, R>(
    items: &[T],
    from: usize,
    look: impl Fn(&[T]) -> R + Sync,
    join: impl FnOnce(R, R) -> R,
) -> R
where
    T: Sync,
    R: Send,
{
    if items.len() < from {
        return look(items);
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| look(second));
        let found = look(first);
        let rest = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        join(found, rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_are_looked_at_and_joined_in_order() {
        let items: Vec<u32> = (0..10).collect();
        let concat = |mut a: Vec<u32>, b: Vec<u32>| {
            a.extend(b);
            a
        };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let look = |part: &[u32]| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            part.to_vec()
        };
        assert_eq!(in_halves(&items, 4, look, concat), items);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(in_halves(&items, 11, look, concat), items);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
