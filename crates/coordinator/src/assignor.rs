//! Server-side assignors for the consumer protocol (KIP-848): `uniform`
//! (balanced and sticky) and `range` (per topic, contiguous ranges).

use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// topic id → partitions
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    pub subscribed: &'a BTreeSet<Uuid>,
    pub current: &'a Assignment,
}

pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Computes the target assignment of every member. `partitions` gives each
/// subscribed topic's partition count.
pub fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn range(
    members: &[AssignorMember<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_string(), Assignment::new()))
        .collect();
    for (topic, count) in partitions {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .map(|m| m.member_id)
            .collect();
        subscribers.sort();
        if subscribers.is_empty() {
            continue;
        }
        let per = *count as usize / subscribers.len();
        let extra = *count as usize % subscribers.len();
        let mut next = 0i32;
        for (i, member) in subscribers.iter().enumerate() {
            let n = per + usize::from(i < extra);
            let set: BTreeSet<i32> = (next..next + n as i32).collect();
            next += n as i32;
            if !set.is_empty() {
                out.get_mut(*member).unwrap().insert(*topic, set);
            }
        }
    }
    out
}

fn uniform(
    members: &[AssignorMember<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_string(), Assignment::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let all: Vec<(Uuid, i32)> = partitions
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .collect();
    let eligible = |topic: &Uuid| {
        members
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .count()
    };
    let total = all.iter().filter(|(t, _)| eligible(t) > 0).count();
    // Balanced: every member gets `floor` partitions, `extra` of them one more.
    let floor = total / members.len();
    let mut extra = total % members.len();
    let mut counts: BTreeMap<&str, usize> = members.iter().map(|m| (m.member_id, 0)).collect();
    let owner_of = |topic: &Uuid, partition: &i32| {
        members.iter().find(|m| {
            m.subscribed.contains(topic)
                && m.current
                    .get(topic)
                    .is_some_and(|ps| ps.contains(partition))
        })
    };
    let give = |out: &mut BTreeMap<String, Assignment>,
                counts: &mut BTreeMap<&str, usize>,
                member: &str,
                topic: Uuid,
                partition: i32| {
        *counts.get_mut(member).unwrap() += 1;
        out.get_mut(member)
            .unwrap()
            .entry(topic)
            .or_default()
            .insert(partition);
    };
    // Stickiness first: owners keep up to `floor`, then use the extra slots.
    let mut rest = Vec::new();
    for (topic, partition) in &all {
        match owner_of(topic, partition) {
            Some(m) if counts[m.member_id] < floor => {
                give(&mut out, &mut counts, m.member_id, *topic, *partition)
            }
            _ => rest.push((*topic, *partition)),
        }
    }
    let mut unassigned = Vec::new();
    for (topic, partition) in rest {
        match owner_of(&topic, &partition) {
            Some(m) if counts[m.member_id] == floor && extra > 0 => {
                extra -= 1;
                give(&mut out, &mut counts, m.member_id, topic, partition);
            }
            _ => unassigned.push((topic, partition)),
        }
    }
    // The rest to the least loaded eligible member.
    for (topic, partition) in unassigned {
        let target = members
            .iter()
            .filter(|m| m.subscribed.contains(&topic))
            .min_by_key(|m| (counts[m.member_id], m.member_id));
        if let Some(m) = target {
            give(&mut out, &mut counts, m.member_id, topic, partition);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = Uuid::new_v4();
        let sub: BTreeSet<Uuid> = [t].into();
        let empty = Assignment::new();
        let parts = BTreeMap::from([(t, 7)]);
        let members = [
            AssignorMember {
                member_id: "a",
                subscribed: &sub,
                current: &empty,
            },
            AssignorMember {
                member_id: "b",
                subscribed: &sub,
                current: &empty,
            },
        ];
        let first = assign("uniform", &members, &parts);
        assert_eq!(count(&first["a"]) + count(&first["b"]), 7);
        assert!(count(&first["a"]).abs_diff(count(&first["b"])) <= 1);
        // A third member joins: a and b keep most of what they had.
        let members = [
            AssignorMember {
                member_id: "a",
                subscribed: &sub,
                current: &first["a"],
            },
            AssignorMember {
                member_id: "b",
                subscribed: &sub,
                current: &first["b"],
            },
            AssignorMember {
                member_id: "c",
                subscribed: &sub,
                current: &empty,
            },
        ];
        let second = assign("uniform", &members, &parts);
        let kept_a = second["a"][&t].intersection(&first["a"][&t]).count();
        assert_eq!(
            kept_a,
            count(&second["a"]),
            "a only keeps its own partitions"
        );
        assert_eq!(
            count(&second["a"]) + count(&second["b"]) + count(&second["c"]),
            7
        );
        assert!(count(&second["c"]) >= 2);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let t = Uuid::new_v4();
        let sub: BTreeSet<Uuid> = [t].into();
        let empty = Assignment::new();
        let members = [
            AssignorMember {
                member_id: "b",
                subscribed: &sub,
                current: &empty,
            },
            AssignorMember {
                member_id: "a",
                subscribed: &sub,
                current: &empty,
            },
        ];
        let out = assign("range", &members, &BTreeMap::from([(t, 5)]));
        assert_eq!(out["a"][&t], [0, 1, 2].into());
        assert_eq!(out["b"][&t], [3, 4].into());
    }
}
