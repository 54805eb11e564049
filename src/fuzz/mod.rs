//! A small deterministic mutation fuzzer for the unit tests.
//!
//! Every parser that sees bytes from the network or from a file another user
//! can write has a target in its own module's tests: [`run`] hands it seed
//! inputs and mutations of them (bytes flipped, inserted, deleted, ranges
//! repeated, tokens from the target's dictionary spliced in, inputs crossed
//! over), and the target checks that nothing panics and that the properties it
//! names hold. The generator is seeded per target, so a failure reproduces
//! with `cargo test NAME`; the failing input is printed.

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that matter to most of our parsers.
const COMMON: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b".",
    b":",
    b"@",
    b"%",
    b"<",
    b">",
    b" ",
    b"\t",
    b"=",
    b"\xff",
    b"\x80",
    b"0",
    b"-1",
    b"4294967296",
    b"18446744073709551616",
    b"99999999999999999999",
];

/// Runs `target` on every seed and on `rounds` mutated inputs.
pub fn run(
    name: &str,
    seeds: &[&[u8]],
    dict: &[&[u8]],
    rounds: usize,
    mut target: impl FnMut(&[u8]),
) {
    let mut rng = Rng::new(name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    let mut pool: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    for s in &pool {
        check(name, s, &mut target);
    }
    for _ in 0..rounds {
        let mut input = pool[rng.below(pool.len())].clone();
        for _ in 0..=rng.below(4) {
            let other = &pool[rng.below(pool.len())];
            mutate(&mut rng, &mut input, dict, other);
        }
        input.truncate(1 << 16);
        check(name, &input, &mut target);
        // Keep some mutants as parents, so mutations pile up.
        if rng.below(8) == 0 {
            if pool.len() < 64 {
                pool.push(input);
            } else {
                let i = seeds.len() + rng.below(pool.len() - seeds.len());
                pool[i] = input;
            }
        }
    }
}

fn check(name: &str, input: &[u8], target: &mut impl FnMut(&[u8])) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(input)));
    if let Err(e) = r {
        crate::elog!(
            "fuzz target {name} failed on input {:?}",
            String::from_utf8_lossy(input)
        );
        std::panic::resume_unwind(e);
    }
}

fn mutate(rng: &mut Rng, v: &mut Vec<u8>, dict: &[&[u8]], other: &[u8]) {
    let at = |rng: &mut Rng, v: &Vec<u8>| rng.below(v.len() + 1);
    match rng.below(8) {
        0 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        1 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = rng.next() as u8;
        }
        2 => {
            let i = at(rng, v);
            v.insert(i, rng.next() as u8);
        }
        3 if !v.is_empty() => {
            let i = rng.below(v.len());
            let n = 1 + rng.below((v.len() - i).min(16));
            v.drain(i..i + n);
        }
        4 if !v.is_empty() => {
            // Repeat a range, up to a few hundred times (long lines, deep nesting).
            let i = rng.below(v.len());
            let n = 1 + rng.below((v.len() - i).min(32));
            let piece = v[i..i + n].to_vec();
            let most = if rng.below(4) == 0 { 400 } else { 4 };
            let times = 1 + rng.below(most);
            let j = at(rng, v);
            for _ in 0..times {
                v.splice(j..j, piece.iter().copied());
            }
        }
        5 if !other.is_empty() => {
            // Cross over: the front of this input, the back of another.
            let i = at(rng, v);
            let j = rng.below(other.len());
            v.truncate(i);
            v.extend_from_slice(&other[j..]);
        }
        _ => {
            let tok = if !dict.is_empty() && rng.below(3) != 0 {
                dict[rng.below(dict.len())]
            } else {
                COMMON[rng.below(COMMON.len())]
            };
            let i = at(rng, v);
            if rng.below(2) == 0 || v.is_empty() {
                v.splice(i..i, tok.iter().copied());
            } else {
                let end = (i + tok.len()).min(v.len());
                v.splice(i..end, tok.iter().copied());
            }
        }
    }
}

mod targets;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_varied() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        run("t", &[b"HELO x\r\n"], &[b"DATA"], 200, |i| {
            a.push(i.to_vec())
        });
        run("t", &[b"HELO x\r\n"], &[b"DATA"], 200, |i| {
            b.push(i.to_vec())
        });
        assert_eq!(a, b);
        a.sort();
        a.dedup();
        assert!(a.len() > 150, "only {} distinct inputs", a.len());
    }

    #[test]
    #[should_panic(expected = "found")]
    fn a_failing_target_fails_the_test() {
        run("t", &[b"abc"], &[b"XYZ"], 2000, |i| {
            assert!(!i.windows(3).any(|w| w == b"XYZ"), "found")
        });
    }
}
