//! The seeded population, as `insight seed --population-file` writes it, and the
//! pools the scenarios draw citizens from.
//!
//! - [`Lending`]: citizens lent to one user at a time (the citizen scenario deletes
//!   its export at the end, which must not pull an archive from under another user).
//! - [`Rotation`]: citizens handed out round robin to anyone (FHI orders).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use rand::seq::SliceRandom;
use serde::Deserialize;

use crate::cli::Size;

/// One seeded citizen.
#[derive(Debug, Clone, Deserialize)]
pub struct Citizen {
    pub phone_number: String,
    pub devices: u32,
    pub events: u64,
}

#[derive(Debug, Deserialize)]
struct PopulationFile {
    citizens: Vec<Citizen>,
}

/// Reads the population file and checks that it lists usable citizens.
pub fn load(path: &Path) -> anyhow::Result<Vec<Citizen>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: PopulationFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a population file", path.display()))?;

    if file.citizens.is_empty() {
        bail!("{} lists no citizens", path.display());
    }
    if let Some(bad) = file
        .citizens
        .iter()
        .find(|c| !c.phone_number.starts_with('+') || c.devices == 0)
    {
        bail!(
            "{} lists a citizen without devices or an E.164 number: {bad:?}",
            path.display()
        );
    }
    Ok(file.citizens)
}

/// Indices of the citizens of a size class, in random order.
///
/// `typical` is the 40th to 60th percentile by events; `large` the `large_count`
/// citizens with most events.
pub fn select(citizens: &[Citizen], size: Size, large_count: usize) -> Vec<usize> {
    let mut by_events: Vec<usize> = (0..citizens.len()).collect();
    by_events.sort_by_key(|&i| citizens[i].events);
    let n = by_events.len();

    let mut chosen = match size {
        Size::Any => by_events,
        Size::Typical => {
            let from = n * 40 / 100;
            let to = (n * 60 / 100).max(from + 1).min(n);
            by_events[from..to].to_vec()
        }
        Size::Large => by_events[n.saturating_sub(large_count.max(1))..].to_vec(),
    };

    chosen.shuffle(&mut rand::rng());
    chosen
}

/// Citizens lent to one user at a time.
#[derive(Debug)]
pub struct Lending {
    order: Vec<usize>,
    cursor: AtomicUsize,
    busy: Mutex<HashSet<usize>>,
}

/// A citizen on loan; returned when dropped.
#[derive(Debug)]
pub struct Loan<'a> {
    pool: &'a Lending,
    pub index: usize,
}

impl Lending {
    pub fn new(order: Vec<usize>) -> Self {
        Self {
            order,
            cursor: AtomicUsize::new(0),
            busy: Mutex::new(HashSet::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The next citizen no other user holds, if any is free.
    pub fn lend(&self) -> Option<Loan<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());

        for _ in 0..self.order.len() {
            let at = self.cursor.fetch_add(1, Ordering::Relaxed) % self.order.len();
            let index = self.order[at];
            if busy.insert(index) {
                return Some(Loan { pool: self, index });
            }
        }
        None
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        let mut busy = self.pool.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(&self.index);
    }
}

/// Citizens handed out round robin.
#[derive(Debug)]
pub struct Rotation {
    order: Vec<usize>,
    cursor: AtomicUsize,
}

/// A citizen from a rotation, and whether this is its first turn in the run.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    pub index: usize,
    pub first: bool,
}

impl Rotation {
    pub fn new(order: Vec<usize>) -> Self {
        Self {
            order,
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn next(&self) -> Option<Turn> {
        if self.order.is_empty() {
            return None;
        }
        let count = self.cursor.fetch_add(1, Ordering::Relaxed);

        Some(Turn {
            index: self.order[count % self.order.len()],
            first: count < self.order.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(events: &[u64]) -> Vec<Citizen> {
        events
            .iter()
            .enumerate()
            .map(|(i, &events)| Citizen {
                phone_number: format!("+4790000{i:03}"),
                devices: 1,
                events,
            })
            .collect()
    }

    #[test]
    fn size_classes_pick_the_right_citizens() {
        let citizens = population(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100_000]);

        let large = select(&citizens, Size::Large, 1);
        assert_eq!(large, [9]);

        let mut typical = select(&citizens, Size::Typical, 1);
        typical.sort();
        assert_eq!(typical, [4, 5]);

        let any = select(&citizens, Size::Any, 1);
        assert_eq!(any.len(), 10);
    }

    #[test]
    fn a_citizen_is_lent_to_one_user_at_a_time() {
        let pool = Lending::new(vec![3, 7]);

        let first = pool.lend().expect("a free citizen");
        let second = pool.lend().expect("another free citizen");
        assert_ne!(first.index, second.index);
        assert!(pool.lend().is_none());

        drop(first);
        assert!(pool.lend().is_some());
    }

    #[test]
    fn a_rotation_says_when_it_starts_over() {
        let rotation = Rotation::new(vec![5, 6]);

        let turns: Vec<(usize, bool)> = (0..3)
            .filter_map(|_| rotation.next())
            .map(|t| (t.index, t.first))
            .collect();

        assert_eq!(turns, [(5, true), (6, true), (5, false)]);
    }
}
