//! The bucket's listing for the blob check: slices between split points
//! taken from the rows, listed several at once and handed on in key order.

use futures::{StreamExt, TryStreamExt};

use crate::engine::EngineError;
use crate::store::{BackupStore, ObjectInfo};

/// The bucket is listed in slices of about this many rows (split at every
/// hundredth key of a 1 % sample), this many slices at once (in order): one
/// listing request returns at most 1 000 keys, and one request after the
/// other is what takes the time. The slices listed ahead of the merge are
/// what memory holds: 12 at once were no faster than 8 in the blob step
/// (2.5–3.3 s either way at 204 800 objects in Garage) but raised its peak
/// RSS past 64 MiB.
pub(super) const SLICE: usize = 10_000;
const SLICES_AT_ONCE: usize = 8;

/// The whole listing, in order, from slices listed [`SLICES_AT_ONCE`] at a
/// time; memory holds at most that many slices.
pub(super) fn sliced_listing<'a>(
    store: &'a dyn BackupStore,
    splits: &'a [String],
) -> impl futures::Stream<Item = Result<ObjectInfo, EngineError>> + Unpin + 'a {
    let bounds: Vec<(Option<&str>, Option<&str>)> = (0..=splits.len())
        .map(|i| (i.checked_sub(1).map(|p| splits[p].as_str()), splits.get(i).map(String::as_str)))
        .collect();
    let slices = futures::stream::iter(bounds)
        .map(move |(after, up_to)| async move {
            let slice =
                store.list_range("", after, up_to).try_fold(Slice::default(), |slice, o| async { Ok(slice.with(o)) });
            slice.await.map(Slice::compacted)
        })
        .buffered(SLICES_AT_ONCE);
    Box::pin(
        slices
            .map_err(EngineError::from)
            .map_ok(|slice| futures::stream::iter(slice.into_objects().map(Ok)))
            .try_flatten(),
    )
}

/// A listed slice waiting for the merge, kept compact: the merge needs only
/// each key and size, and keys listed in order share most of their start
/// with the key before (upstream's all begin `staging/<tenant>/`), so each
/// is kept as what differs from the one before.
#[derive(Default)]
struct Slice {
    /// The keys' differing ends, one after the other.
    tails: String,
    last: String,
    objects: Vec<Entry>,
}

struct Entry {
    /// Bytes of the key before that this key starts with.
    shared: u16,
    /// Where this key's tail ends in `tails`.
    end: u32,
    size: u64,
}

impl Slice {
    fn with(mut self, o: ObjectInfo) -> Self {
        let mut shared =
            self.last.bytes().zip(o.key.bytes()).take_while(|(a, b)| a == b).count().min(u16::MAX as usize);
        while !o.key.is_char_boundary(shared) {
            shared -= 1;
        }
        self.tails.push_str(&o.key[shared..]);
        let end = u32::try_from(self.tails.len()).expect("a slice's keys exceed 4 GiB");
        self.objects.push(Entry { shared: shared as u16, end, size: o.size });
        self.last = o.key;
        self
    }

    /// Without the spare capacity growing left (up to as much again).
    fn compacted(mut self) -> Self {
        self.tails.shrink_to_fit();
        self.objects.shrink_to_fit();
        self
    }

    fn into_objects(self) -> impl Iterator<Item = ObjectInfo> {
        let (mut key, mut start) = (String::new(), 0);
        self.objects.into_iter().map(move |Entry { shared, end, size }| {
            // The key before shares these bytes with this one, so they end a
            // character in it too.
            key.truncate(shared as usize);
            key.push_str(&self.tails[start..end as usize]);
            start = end as usize;
            ObjectInfo { key: key.clone(), size, modified: None }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_gives_back_exactly_the_keys_and_sizes_it_was_given() {
        let keys = [
            "staging/t/a/1",
            "staging/t/a/2",
            "staging/t/b",
            "staging/t/b/\u{e9}t\u{e9}",
            "staging/t/b/\u{e9}\u{e8}",
            "staging/t/b/\u{e9}\u{e8}x",
            "z",
            "",
        ];
        let listed =
            keys.iter().enumerate().map(|(i, k)| ObjectInfo { key: k.to_string(), size: i as u64, modified: None });
        let slice = listed.fold(Slice::default(), Slice::with);
        let back: Vec<(String, u64)> = slice.into_objects().map(|o| (o.key, o.size)).collect();
        let expected: Vec<(String, u64)> = keys.iter().enumerate().map(|(i, k)| (k.to_string(), i as u64)).collect();
        assert_eq!(back, expected);
    }
}
