//! A socket's outbox: a bounded queue with one producer (the hub's entry for the socket)
//! and one consumer (the socket's task).
//!
//! Written here rather than taken from tokio's `mpsc` because a room's fan-out queues one
//! item per member per message, and profiles of a room of 1,000 put tokio's bounded channel
//! (its semaphore, block list and waker) at a sixth of the server's CPU. This one is a
//! `VecDeque` under a mutex that only these two ever take, for a moment each: the producer
//! wakes the consumer only when it finds the queue empty (a consumer that has not emptied
//! it yet will look again before it sleeps), and an idle socket's queue holds no memory
//! until something is queued (tokio's channel allocates a block of 32 items at once).

use futures::task::AtomicWaker;
use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex},
    task::Poll,
};
use tokio::sync::mpsc::error::TryRecvError;

use crate::locks::lock;

/// Most items an empty queue keeps room for; a larger one gives its memory back.
const KEPT_WHEN_EMPTY: usize = 128;

struct Queue<T> {
    items: VecDeque<T>,
    /// The sender is gone: once `items` is empty, nothing more comes.
    closed: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    consumer: AtomicWaker,
    capacity: usize,
}

/// A queue of at most `capacity` items: the producer's half, then the consumer's.
pub fn outbox<T>(capacity: usize) -> (OutboxSender<T>, Outbox<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            closed: false,
        }),
        consumer: AtomicWaker::new(),
        capacity,
    });
    (OutboxSender(shared.clone()), Outbox(shared))
}

/// The producer's half; dropping it closes the outbox.
pub struct OutboxSender<T>(Arc<Shared<T>>);

impl<T> OutboxSender<T> {
    /// Queues `item`, or gives it back if the outbox is full.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        let was_empty = {
            let mut q = lock(&self.0.queue);
            if q.items.len() >= self.0.capacity {
                return Err(item);
            }
            q.items.push_back(item);
            q.items.len() == 1
        };
        if was_empty {
            self.0.consumer.wake();
        }
        Ok(())
    }
}

impl<T> Drop for OutboxSender<T> {
    fn drop(&mut self) {
        lock(&self.0.queue).closed = true;
        self.0.consumer.wake();
    }
}

impl<T> std::fmt::Debug for OutboxSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboxSender")
    }
}

/// The consumer's half.
pub struct Outbox<T>(Arc<Shared<T>>);

impl<T> Outbox<T> {
    /// The next item if one is queued; `Disconnected` once the sender is gone and
    /// everything it queued was taken.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut q = lock(&self.0.queue);
        match q.items.pop_front() {
            Some(item) => {
                if q.items.is_empty() && q.items.capacity() > KEPT_WHEN_EMPTY {
                    // A burst's peak is not kept for the quiet that follows it.
                    q.items = VecDeque::new();
                }
                Ok(item)
            }
            None if q.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next item, waiting for one; `None` once the sender is gone and everything it
    /// queued was taken. Cancel-safe: an item is taken only when it is returned.
    pub async fn recv(&mut self) -> Option<T> {
        // As tokio's own channels do: a task whose outbox never runs dry still yields to
        // the others on its worker now and then.
        tokio::task::coop::consume_budget().await;
        poll_fn(|cx| {
            if let Poll::Ready(answer) = self.poll_take() {
                return Poll::Ready(answer);
            }
            self.0.consumer.register(cx.waker());
            // An item queued between the first look and the registration woke no one (or a
            // waker of before): this look sees it.
            self.poll_take()
        })
        .await
    }

    /// What [`Self::recv`] answers now, if it can answer without waiting.
    fn poll_take(&mut self) -> Poll<Option<T>> {
        match self.try_recv() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }
}

impl<T> std::fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_come_out_in_order_and_a_full_outbox_gives_the_item_back() {
        let (tx, mut rx) = outbox(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(3));
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Ok(4));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_queue_emptied_after_a_burst_gives_its_memory_back() {
        let (tx, mut rx) = outbox(1024);
        for i in 0..1000 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(lock(&rx.0.queue).items.capacity(), 0);
        for i in 0..10 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(
            lock(&rx.0.queue).items.capacity() > 0,
            "a small queue keeps its room"
        );
    }

    #[test]
    fn what_was_queued_is_still_taken_after_the_sender_is_gone() {
        let (tx, mut rx) = outbox(4);
        tx.try_send("a").unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok("a"));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_an_item_and_by_the_sender_leaving() {
        let (tx, mut rx) = outbox(4);
        let consumer = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(item) = rx.recv().await {
                got.push(item);
            }
            got
        });
        for i in 0..3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.try_send(i).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), consumer)
            .await
            .expect("the consumer was woken")
            .unwrap();
        assert_eq!(got, vec![0, 1, 2]);
    }

    /// A producer on another thread pushing as fast as it can while the consumer drains:
    /// every item arrives once, in order, and the consumer never sleeps through one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_lost_or_reordered_between_threads() {
        const N: u32 = 200_000;
        let (tx, mut rx) = outbox(64);
        let producer = std::thread::spawn(move || {
            let (mut next, start) = (0, std::time::Instant::now());
            // Bounded in time too: a consumer that stopped taking leaves the queue full.
            while next < N && start.elapsed() < Duration::from_secs(60) {
                if tx.try_send(next).is_ok() {
                    next += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = 0;
        let drained = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(item) = rx.recv().await {
                assert_eq!(item, expected);
                expected += 1;
            }
        })
        .await;
        producer.join().unwrap();
        assert!(
            drained.is_ok(),
            "the consumer slept through an item at {expected}"
        );
        assert_eq!(expected, N);
    }
}
