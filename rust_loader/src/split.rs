//! Train/validation/test splits over time-ordered CSR sequences.

use crate::buf::Buf;
use crate::sequences::Split;

/// Leave-one-out: the last item is the test target, the second-last the validation target,
/// the rest is training. Short users: with 2 items the first trains and the second is the test
/// target (no validation target); with 1 item the user only trains.
pub fn leave_one_out(offsets: &[i64]) -> Split {
    let n_users = offsets.len() - 1;
    let mut train_end = Vec::with_capacity(n_users);
    let mut valid_pos = Vec::with_capacity(n_users);
    let mut test_pos = Vec::with_capacity(n_users);
    for w in offsets.windows(2) {
        let (start, end) = (w[0], w[1]);
        match end - start {
            0 | 1 => {
                train_end.push(end);
                valid_pos.push(-1);
                test_pos.push(-1);
            }
            2 => {
                train_end.push(start + 1);
                valid_pos.push(-1);
                test_pos.push(start + 1);
            }
            _ => {
                train_end.push(end - 2);
                valid_pos.push(end - 2);
                test_pos.push(end - 1);
            }
        }
    }
    Split {
        train_end: Buf::owned(train_end),
        valid_pos: Buf::owned(valid_pos),
        test_pos: Buf::owned(test_pos),
    }
}

/// The timestamps at which validation and test periods start: the (1 - valid - test) and
/// (1 - test) quantiles of all interaction times.
pub fn temporal_cutoffs(times: &[i64], valid_fraction: f64, test_fraction: f64) -> (i64, i64) {
    let mut sorted = times.to_vec();
    let quantile = |sorted: &mut Vec<i64>, q: f64| -> i64 {
        let k = ((sorted.len() as f64) * q).floor() as usize;
        let k = k.min(sorted.len() - 1);
        *sorted.select_nth_unstable(k).1
    };
    let t_valid = quantile(&mut sorted, 1.0 - valid_fraction - test_fraction);
    let t_test = quantile(&mut sorted, 1.0 - test_fraction);
    (t_valid, t_test)
}

/// Global temporal split: interactions before `t_valid` train; a user's validation target is
/// their first interaction in [t_valid, t_test), their test target their first interaction at
/// or after t_test. A target needs at least one earlier interaction (its history). Test
/// histories include everything before the test target, validation-period items too.
pub fn temporal(offsets: &[i64], times: &[i64], t_valid: i64, t_test: i64) -> Split {
    let n_users = offsets.len() - 1;
    let mut train_end = Vec::with_capacity(n_users);
    let mut valid_pos = Vec::with_capacity(n_users);
    let mut test_pos = Vec::with_capacity(n_users);
    for w in offsets.windows(2) {
        let (start, end) = (w[0] as usize, w[1] as usize);
        let user_times = &times[start..end];
        let first_valid = start + user_times.partition_point(|&t| t < t_valid);
        let first_test = start + user_times.partition_point(|&t| t < t_test);
        train_end.push(first_valid as i64);
        let has_valid = first_valid > start && first_valid < first_test;
        valid_pos.push(if has_valid { first_valid as i64 } else { -1 });
        let has_test = first_test > start && first_test < end;
        test_pos.push(if has_test { first_test as i64 } else { -1 });
    }
    Split {
        train_end: Buf::owned(train_end),
        valid_pos: Buf::owned(valid_pos),
        test_pos: Buf::owned(test_pos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_positions() {
        let split = leave_one_out(&[0, 1, 3, 8]);
        assert_eq!(&split.train_end[..], &[1, 2, 6]);
        assert_eq!(&split.valid_pos[..], &[-1, -1, 6]);
        assert_eq!(&split.test_pos[..], &[-1, 2, 7]);
    }

    #[test]
    fn temporal_targets_follow_cutoffs() {
        // user 0: times 1 2 5 8; user 1: times 6 7 (starts in the validation period)
        let offsets = [0, 4, 6];
        let times = [1, 2, 5, 8, 6, 7];
        let split = temporal(&offsets, &times, 5, 8);
        assert_eq!(&split.train_end[..], &[2, 4]);
        assert_eq!(&split.valid_pos[..], &[2, -1]);
        assert_eq!(&split.test_pos[..], &[3, -1]);
    }

    #[test]
    fn cutoffs_are_quantiles() {
        let times: Vec<i64> = (0..100).collect();
        assert_eq!(temporal_cutoffs(&times, 0.1, 0.1), (80, 90));
    }
}
