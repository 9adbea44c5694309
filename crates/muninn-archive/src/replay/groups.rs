//! `--set-group-offsets`: a consumer group's committed positions on the archived partitions,
//! translated into the replayed topic's offsets, so a service started on the replayed topic
//! with that group goes on exactly where the original left off (the cold-start case).
//!
//! For each archived partition the replay remembers where two messages landed: the first one
//! at or after the group's committed offset, and the last one. The group's position on a
//! target partition is where that first message landed; when the group had consumed every
//! replayed message of the partition, just after the last one. A partition the group never
//! committed counts as not consumed at all. When several archived partitions go to one target
//! partition, the lowest position wins: nothing is skipped, at worst a message is read twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A consumer group's positions to translate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOffsets {
    /// The group whose offsets are set on the target (the same name).
    pub group: String,
    /// The group's committed offset (the next it consumes) per archived (stream, partition).
    pub committed: BTreeMap<(String, i32), i64>,
}

/// Where one replayed message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Landing {
    /// Its archived offset.
    pub source_offset: i64,
    pub partition: i32,
    pub offset: i64,
}

/// What one archived partition's replay tells about the group's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Landings {
    /// The first message at or after the group's committed offset.
    pub at_committed: Option<Landing>,
    /// The last message delivered.
    pub last: Option<Landing>,
}

impl Landings {
    /// Notes a delivered message of a partition whose group position is `committed`.
    pub fn delivered(&mut self, committed: Option<i64>, landing: Landing) {
        if self.at_committed.is_none()
            && committed.is_none_or(|committed| landing.source_offset >= committed)
        {
            self.at_committed = Some(landing);
        }
        if self
            .last
            .is_none_or(|last| landing.source_offset > last.source_offset)
        {
            self.last = Some(landing);
        }
    }

    /// The group's position on the target: (partition, next offset).
    fn target_position(&self) -> Option<(i32, i64)> {
        match (self.at_committed, self.last) {
            (Some(at), _) => Some((at.partition, at.offset)),
            (None, Some(last)) => Some((last.partition, last.offset + 1)),
            (None, None) => None,
        }
    }
}

/// The offsets to commit for the group on the target: per target partition, the lowest
/// position any archived partition sent there translates to.
pub(crate) fn translate<'a>(
    landings: impl IntoIterator<Item = &'a Landings>,
) -> BTreeMap<i32, i64> {
    let mut positions = BTreeMap::new();
    for (partition, offset) in landings.into_iter().filter_map(Landings::target_position) {
        positions
            .entry(partition)
            .and_modify(|lowest: &mut i64| *lowest = (*lowest).min(offset))
            .or_insert(offset);
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landed(source_offset: i64, partition: i32, offset: i64) -> Landing {
        Landing {
            source_offset,
            partition,
            offset,
        }
    }

    #[test]
    fn the_group_resumes_at_its_first_unconsumed_message() {
        // Archived offsets 100..=109 replayed to target offsets 0..=9; the group had
        // committed 104 (consumed 100..=103).
        let mut landings = Landings::default();
        for n in 0..10 {
            landings.delivered(Some(104), landed(100 + n, 2, n));
        }
        assert_eq!(translate([&landings]), BTreeMap::from([(2, 4)]));
    }

    #[test]
    fn a_group_past_the_replay_goes_after_it_and_one_before_reads_it_all() {
        let (mut past, mut before, mut never) = (
            Landings::default(),
            Landings::default(),
            Landings::default(),
        );
        for n in 0..5 {
            past.delivered(Some(1_000), landed(10 + n, 0, 50 + n));
            before.delivered(Some(3), landed(10 + n, 1, 70 + n));
            never.delivered(None, landed(10 + n, 2, 90 + n));
        }
        assert_eq!(
            translate([&past, &before, &never]),
            BTreeMap::from([(0, 55), (1, 70), (2, 90)])
        );
    }

    #[test]
    fn merged_partitions_take_the_lowest_and_checkpointed_runs_add_up() {
        let mut first_run = Landings::default();
        first_run.delivered(Some(12), landed(10, 0, 0));
        first_run.delivered(Some(12), landed(11, 0, 1));
        first_run.delivered(Some(12), landed(12, 0, 2));
        // A resumed run goes on from the checkpointed landings.
        let mut resumed = first_run;
        resumed.delivered(Some(12), landed(13, 0, 5));
        assert_eq!(resumed.at_committed, Some(landed(12, 0, 2)));
        assert_eq!(resumed.last, Some(landed(13, 0, 5)));

        let mut other = Landings::default();
        other.delivered(Some(0), landed(0, 0, 3));
        assert_eq!(translate([&resumed, &other]), BTreeMap::from([(0, 2)]));
    }
}
