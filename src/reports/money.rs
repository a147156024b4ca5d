//! Exact arithmetic for money that is divided: a subscription's monthly value is a fraction of
//! its prices (a year is twelve months, a week 52/12 of one), kept exact until it is rounded
//! once, half to even, to minor units.

use crate::domain::{Interval, Recurring};

/// A non-negative or negative rational number of minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    numerator: i128,
    denominator: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl Fraction {
    /// Zero.
    pub const ZERO: Self = Self {
        numerator: 0,
        denominator: 1,
    };

    /// `numerator / denominator`; a zero denominator is taken as 1.
    pub fn new(numerator: i128, denominator: i128) -> Self {
        let denominator = if denominator == 0 { 1 } else { denominator };
        let sign = denominator.signum();
        let divisor = gcd(numerator, denominator);
        Self {
            numerator: sign * numerator / divisor,
            denominator: sign * denominator / divisor,
        }
    }

    /// Rounded half to even to a whole number (saturating at the bounds of `i64`).
    pub fn round_half_even(self) -> i64 {
        round_ratio(self.numerator, self.denominator)
    }

    /// The smaller of two fractions.
    pub fn min(self, other: Self) -> Self {
        if self <= other { self } else { other }
    }
}

impl PartialOrd for Fraction {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Fraction {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Denominators are positive, so cross-multiplying keeps the order.
        (self.numerator * other.denominator).cmp(&(other.numerator * self.denominator))
    }
}

impl std::ops::Sub for Fraction {
    type Output = Self;

    fn sub(self, other: Self) -> Self {
        self + Self::new(-other.numerator, other.denominator)
    }
}

/// `numerator / denominator` (a positive denominator) rounded half to even, saturating at the
/// bounds of `i64`: what [`Fraction::round_half_even`] does, without reducing the fraction first.
pub fn round_ratio(numerator: i128, denominator: i128) -> i64 {
    let (n, d) = if denominator < 0 {
        (-numerator, -denominator)
    } else {
        (numerator, denominator.max(1))
    };
    let quotient = n.div_euclid(d);
    let remainder = n.rem_euclid(d);
    let rounded = match (2 * remainder).cmp(&d) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    };
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// `total` shared out pro rata to `weights` in whole units that add up to `total` exactly: each
/// share rounded down, and the units left over given one each to the largest remainders (the
/// first of equal ones). Negative weights count as zero; when no weight is positive, the first
/// share takes everything.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    let weights: Vec<i128> = weights.iter().map(|w| i128::from((*w).max(0))).collect();
    let sum: i128 = weights.iter().sum();
    let mut shares = vec![0_i64; weights.len()];
    if shares.is_empty() {
        return shares;
    }
    if sum == 0 {
        shares[0] = total;
        return shares;
    }
    let total_wide = i128::from(total);
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (index, weight) in weights.iter().enumerate() {
        let exact = total_wide * weight;
        let share = exact.div_euclid(sum);
        given += share;
        shares[index] = i64::try_from(share).unwrap_or_default();
        remainders.push((exact.rem_euclid(sum), index));
    }
    // Largest remainder first; the earlier line first among equals.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = usize::try_from(total_wide - given).unwrap_or(0);
    for (_, index) in remainders.into_iter().take(left) {
        shares[index] += 1;
    }
    shares
}

impl std::ops::Add for Fraction {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self::new(
            self.numerator * other.denominator + other.numerator * self.denominator,
            self.denominator * other.denominator,
        )
    }
}

impl std::ops::Mul for Fraction {
    type Output = Self;

    fn mul(self, other: Self) -> Self {
        Self::new(
            self.numerator * other.numerator,
            self.denominator * other.denominator,
        )
    }
}

/// What one cycle of `recurring` is worth per month, as a fraction of one cycle's amount:
/// monthly 1, yearly 1/12, weekly 52/12, daily 365/12, each divided by the interval count.
pub fn per_month(recurring: Recurring) -> Fraction {
    let count = i128::from(recurring.interval_count.max(1));
    match recurring.interval {
        Interval::Month => Fraction::new(1, count),
        Interval::Year => Fraction::new(1, 12 * count),
        Interval::Week => Fraction::new(52, 12 * count),
        Interval::Day => Fraction::new(365, 12 * count),
    }
}

/// `part / whole` rounded half to even to `places` decimal places, as a number (a rate, not
/// money); `None` when `whole` is zero.
pub fn rate(part: u64, whole: u64, places: u32) -> Option<f64> {
    if whole == 0 {
        return None;
    }
    let scale = 10_i128.pow(places);
    let scaled = Fraction::new(i128::from(part) * scale, i128::from(whole)).round_half_even();
    // The scaled rate is a small integer, so this division is exact to the printed digits.
    #[allow(clippy::cast_precision_loss)]
    Some(scaled as f64 / scale as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_to_the_even_neighbour_and_the_rest_to_the_nearest() {
        let cases = [
            ((5, 2), 2),
            ((7, 2), 4),
            ((-5, 2), -2),
            ((-7, 2), -4),
            ((10, 3), 3),
            ((11, 3), 4),
            ((0, 7), 0),
        ];
        for ((n, d), expected) in cases {
            assert_eq!(Fraction::new(n, d).round_half_even(), expected, "{n}/{d}");
        }
    }

    #[test]
    fn cycles_are_normalised_to_a_month_with_their_interval_count() {
        let month = |interval, interval_count| {
            per_month(Recurring {
                interval,
                interval_count,
            })
        };
        let worth = |amount: i128, f: Fraction| (Fraction::new(amount, 1) * f).round_half_even();
        assert_eq!(worth(9_900, month(Interval::Year, 1)), 825);
        assert_eq!(worth(1_000, month(Interval::Year, 1)), 83);
        assert_eq!(worth(999, month(Interval::Month, 1)), 999);
        assert_eq!(worth(2_997, month(Interval::Month, 3)), 999);
        // 300 × 52 / 12 = 1300 exactly.
        assert_eq!(worth(300, month(Interval::Week, 1)), 1_300);
        // 250 × 52 / 24 = 541.67.
        assert_eq!(worth(250, month(Interval::Week, 2)), 542);
        assert_eq!(worth(12, month(Interval::Day, 1)), 365);
    }

    #[test]
    fn fractions_add_and_multiply_exactly() {
        let third = Fraction::new(1, 3);
        assert_eq!(third + third + third, Fraction::new(1, 1));
        assert_eq!(
            (Fraction::new(999, 1) * Fraction::new(4, 5)).round_half_even(),
            799
        );
    }

    #[test]
    fn fractions_subtract_and_compare() {
        let half = Fraction::new(1, 2);
        let third = Fraction::new(1, 3);
        assert_eq!(half - third, Fraction::new(1, 6));
        assert!(third < half);
        assert_eq!(half.min(third), third);
        assert_eq!((third - half).round_half_even(), 0);
        assert_eq!(round_ratio(5, 2), 2);
        assert_eq!(round_ratio(-7, 2), -4);
        assert_eq!(round_ratio(7, -2), -4);
    }

    #[test]
    fn an_allocation_adds_up_to_its_total_and_follows_its_weights() {
        assert_eq!(allocate(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(allocate(1_000, &[750, 250]), [750, 250]);
        assert_eq!(allocate(10, &[0, 0]), [10, 0]);
        assert_eq!(allocate(7, &[-5, 1]), [0, 7]);
        assert!(allocate(5, &[]).is_empty());
        for total in [0_i64, 1, 99, 1_234, 99_999] {
            let shares = allocate(total, &[333, 333, 334, 7]);
            assert_eq!(shares.iter().sum::<i64>(), total);
        }
    }

    #[test]
    fn rates_are_rounded_to_their_places_and_undefined_over_zero() {
        assert_eq!(rate(1, 3, 4), Some(0.3333));
        assert_eq!(rate(2, 3, 4), Some(0.6667));
        assert_eq!(rate(1, 8, 2), Some(0.12));
        assert_eq!(rate(3, 3, 4), Some(1.0));
        assert_eq!(rate(0, 0, 4), None);
    }
}
