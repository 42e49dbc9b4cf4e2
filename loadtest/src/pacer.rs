//! A shared pacer that spaces events evenly in time, for a steady order rate no
//! matter how many users share it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out evenly spaced start times.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

/// A pacer that fell this far behind starts afresh instead of bursting to catch up.
const MAX_BACKLOG: Duration = Duration::from_secs(1);

impl Pacer {
    /// A pacer for `per_second` events a second; `None` when that is not positive.
    pub fn per_second(per_second: f64) -> Option<Self> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        Some(Self {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(None),
        })
    }

    /// Waits for this caller's turn.
    pub async fn wait(&self) {
        let slot = self.take_slot(Instant::now());
        tokio::time::sleep_until(slot).await;
    }

    fn take_slot(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());

        let slot = match *next {
            Some(due) if due + MAX_BACKLOG >= now => due.max(now),
            _ => now,
        };
        *next = Some(slot + self.interval);
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spaced() {
        let pacer = Pacer::per_second(10.0).expect("a pacer");
        let now = Instant::now();

        let slots: Vec<Duration> = (0..3).map(|_| pacer.take_slot(now) - now).collect();

        assert_eq!(
            slots,
            [
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(200)
            ]
        );
    }

    #[test]
    fn a_pacer_far_behind_does_not_burst() {
        let pacer = Pacer::per_second(10.0).expect("a pacer");
        let start = Instant::now();
        pacer.take_slot(start);

        let later = start + Duration::from_secs(5);
        assert_eq!(pacer.take_slot(later), later);
    }

    #[test]
    fn no_rate_means_no_pacer() {
        assert!(Pacer::per_second(0.0).is_none());
        assert!(Pacer::per_second(f64::NAN).is_none());
    }
}
