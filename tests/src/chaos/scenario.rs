//! The chaos test's scenario: what happens to each change, fixed by the
//! change's index alone (never by the fault seed), and the pure rules the
//! oracle and the fake Jenkins share (a build's result).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which Gerrit wrote the mails of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Gerrit 2.13: text/plain, no `Gerrit-Change-Number`, no comment date.
    V2,
    /// Gerrit 3.x: multipart, quoted-printable, patchset-level comments.
    V3,
}

/// One step of a change's story; each delivers one or more mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new patch set: built once, voted on.
    Upload(Format),
    /// Two new patch sets at once, both mailed: the first mail names a
    /// patch set that is already superseded and builds nothing.
    Supersede(Format),
    /// A new patch set whose build still runs when the next patch set
    /// arrives: the bot stops it, and posts one line without a vote (or,
    /// when the stop fails, its result without a vote).
    SupersedeWhileBuilding(Format),
    /// A trusted reviewer comments `bionicbb:retry`: one more build.
    Retry(Format),
    /// A trusted reviewer comments `bionicbb:clean`: one clean build.
    Clean(Format),
    /// A stranger comments `bionicbb:retry`: nothing.
    Untrusted(Format),
    /// A trusted reviewer votes `Verified+1`: the bot's -1 (if any) goes.
    HumanVerified(Format),
    /// The change's previous mail arrives again (same bytes): nothing new.
    Duplicate,
}

impl Step {
    /// How many mails the step delivers.
    pub fn mails(self) -> usize {
        match self {
            Step::Supersede(_) | Step::SupersedeWhileBuilding(_) => 2,
            _ => 1,
        }
    }
}

/// Mails per change on average; the number of changes follows from the
/// number of events asked for.
pub const MAILS_PER_CHANGE: usize = 6;

/// The steps of change `index` (0-based): an upload, then a deterministic
/// mix of everything else, about [`MAILS_PER_CHANGE`] mails in all.
pub fn steps(index: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(0xB10C_BB00 ^ (index as u64).wrapping_mul(0x9E37));
    let format = |rng: &mut StdRng| {
        if rng.random_bool(0.5) {
            Format::V2
        } else {
            Format::V3
        }
    };
    let mut steps = vec![Step::Upload(format(&mut rng))];
    let mut mails = 1;
    while mails < MAILS_PER_CHANGE {
        let f = format(&mut rng);
        let step = match rng.random_range(0..100) {
            0..15 => Step::Upload(f),
            15..25 => Step::Supersede(f),
            25..33 => Step::SupersedeWhileBuilding(f),
            33..53 => Step::Retry(f),
            53..63 => Step::Clean(f),
            63..73 => Step::Untrusted(f),
            73..90 => Step::HumanVerified(f),
            _ => Step::Duplicate,
        };
        mails += step.mails();
        steps.push(step);
    }
    steps
}

/// The result of the `ordinal`-th build (0-based) of a verify job for one
/// patch set: about one in three fails.
pub fn verify_result(change: u64, patch_set: u32, ordinal: u32) -> &'static str {
    let mut z = change
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(patch_set) << 20 | u64::from(ordinal));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    if (z ^ (z >> 31)) % 3 == 0 {
        "FAILURE"
    } else {
        "SUCCESS"
    }
}

/// The vote a verify result earns.
pub fn vote_for(result: &str) -> i32 {
    if result == "SUCCESS" { 1 } else { -1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_is_fixed_and_covers_every_step() {
        assert_eq!(steps(7), steps(7));
        let all: Vec<Step> = (0..60).flat_map(steps).collect();
        for probe in [
            |s: &Step| matches!(s, Step::Supersede(_)),
            |s: &Step| matches!(s, Step::SupersedeWhileBuilding(_)),
            |s: &Step| matches!(s, Step::Retry(_)),
            |s: &Step| matches!(s, Step::Clean(_)),
            |s: &Step| matches!(s, Step::Untrusted(_)),
            |s: &Step| matches!(s, Step::HumanVerified(_)),
            |s: &Step| matches!(s, Step::Duplicate),
            |s: &Step| matches!(s, Step::Upload(Format::V2)),
            |s: &Step| matches!(s, Step::Upload(Format::V3)),
        ] {
            assert!(all.iter().any(probe));
        }
        let results: Vec<&str> = (0..30).map(|i| verify_result(123_456, i, 0)).collect();
        assert!(results.contains(&"FAILURE") && results.contains(&"SUCCESS"));
    }
}
