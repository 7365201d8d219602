//! New catalog versions, told to the watch streams of the node they are
//! for and no other. One channel for the whole fleet woke every stream
//! for every version (10,000 streams: 10,000 wake-ups per catalog), and a
//! stream that fell behind it was told "something changed" — a run of
//! every node at once.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The latest version announced for each watched node.
#[derive(Debug, Default)]
pub struct CatalogNotices {
    watched: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl CatalogNotices {
    /// Tells the node's watch streams, if it has any, of `version`.
    pub fn publish(&self, certname: &str, version: u64) {
        let mut watched = self.watched.lock().expect("catalog notices");
        if let Some(sender) = watched.get(certname) {
            if sender.receiver_count() == 0 {
                watched.remove(certname);
            } else {
                sender.send_replace(version);
            }
        }
    }

    /// A receiver of the node's announced versions from now on (its
    /// current value is not news: it is marked seen).
    pub fn subscribe(&self, certname: &str) -> watch::Receiver<u64> {
        let mut watched = self.watched.lock().expect("catalog notices");
        let mut receiver = watched
            .entry(certname.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        receiver.mark_unchanged();
        receiver
    }

    /// Forgets the node's channel when no stream watches it any more
    /// (a stream calls this as it ends, its receiver dropped).
    pub fn release(&self, certname: &str) {
        let mut watched = self.watched.lock().expect("catalog notices");
        if watched
            .get(certname)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            watched.remove(certname);
        }
    }

    /// How many nodes have a channel (for tests).
    pub fn channels(&self) -> usize {
        self.watched.lock().expect("catalog notices").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_version_reaches_only_its_node() {
        let notices = CatalogNotices::default();
        let mut a = notices.subscribe("a");
        let b = notices.subscribe("b");
        notices.publish("a", 3);
        tokio::time::timeout(std::time::Duration::from_secs(5), a.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*a.borrow_and_update(), 3);
        assert!(!b.has_changed().unwrap(), "b was told of a's version");
        notices.publish("nobody", 1);
        assert_eq!(notices.channels(), 2, "no channel for an unwatched node");
    }

    #[test]
    fn a_new_watcher_is_not_told_of_what_came_before_it() {
        let notices = CatalogNotices::default();
        let first = notices.subscribe("a");
        notices.publish("a", 5);
        let second = notices.subscribe("a");
        assert!(first.has_changed().unwrap());
        assert!(!second.has_changed().unwrap());
    }

    #[test]
    fn channels_of_nodes_no_longer_watched_are_dropped() {
        let notices = CatalogNotices::default();
        drop(notices.subscribe("a"));
        let _b = notices.subscribe("b");
        notices.publish("a", 1);
        assert_eq!(notices.channels(), 1);
        let d = notices.subscribe("d");
        notices.release("d");
        assert_eq!(notices.channels(), 2, "d is still watched");
        drop(d);
        notices.release("d");
        assert_eq!(notices.channels(), 1);
    }
}
