//! Which CPUs the gateway and the load side run on: [`Pinning`] (`--pin`), CPU lists in
//! `taskset -c` syntax, and pinning bench-client itself ([`pin_self`]).
//!
//! Depends on nothing else in the crate.

use std::process::Command;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Which CPUs the gateway and the load side (client + kafka-mock) run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// Empty = not pinned.
    pub gateway: Vec<usize>,
    /// bench-client and kafka-mock. Empty = not pinned.
    pub client: Vec<usize>,
    pub description: String,
}

impl Pinning {
    /// `auto`: 1 CPU = no pinning; otherwise the gateway gets the upper half of the CPUs
    /// and client + kafka-mock the lower half (on 2 cores: gateway on CPU 1, the rest on
    /// CPU 0). `none`: no pinning. `G/C`: explicit CPU lists, e.g. `1/0` or `4-7/0-3`.
    pub fn parse(spec: &str, cpus: usize) -> Result<Self, String> {
        match spec.trim() {
            "none" => Ok(Pinning {
                gateway: vec![],
                client: vec![],
                description: "none: every process may run on every CPU".into(),
            }),
            "auto" if cpus < 2 => Ok(Pinning {
                gateway: vec![],
                client: vec![],
                description: "auto on 1 CPU: not pinned".into(),
            }),
            "auto" => {
                let half = cpus / 2;
                let p = Pinning {
                    client: (0..half).collect(),
                    gateway: (half..cpus).collect(),
                    description: String::new(),
                };
                Ok(Pinning {
                    description: format!(
                        "auto: gateway on CPU {}, bench-client and kafka-mock on CPU {}",
                        cpu_list(&p.gateway),
                        cpu_list(&p.client)
                    ),
                    ..p
                })
            }
            s => {
                let (g, c) = s.split_once('/').ok_or_else(|| {
                    format!(
                        "--pin {s:?}: expected auto, none or GATEWAY_CPUS/CLIENT_CPUS (e.g. 1/0)"
                    )
                })?;
                let gateway = parse_cpu_list(g)?;
                let client = parse_cpu_list(c)?;
                if let Some(bad) = gateway.iter().chain(&client).find(|&&c| c >= cpus) {
                    return Err(format!(
                        "--pin {s:?}: CPU {bad} does not exist ({cpus} CPUs)"
                    ));
                }
                Ok(Pinning {
                    description: format!(
                        "gateway on CPU {}, bench-client and kafka-mock on CPU {}",
                        cpu_list(&gateway),
                        cpu_list(&client)
                    ),
                    gateway,
                    client,
                })
            }
        }
    }

    /// Pinning children goes through `taskset`: fail now if it is not there.
    pub fn check_taskset(&self, flag: &str) -> anyhow::Result<()> {
        if self.gateway.is_empty() && self.client.is_empty() {
            return Ok(());
        }
        let ok = Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            bail!("--pin {flag} needs `taskset` (util-linux); install it or pass --pin none");
        }
        Ok(())
    }
}

/// `0-3,6` style.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad CPU {t:?} in {s:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("bad CPU range {part:?}"));
                }
                v.extend(a..=b);
            }
            None => v.push(num(part)?),
        }
    }
    if v.is_empty() {
        return Err(format!("empty CPU list {s:?}"));
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// `taskset -c` syntax.
pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Pin the calling thread (and every thread it starts later) to `cpus`.
pub fn pin_self(cpus: &[usize]) -> anyhow::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain old data, zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `set` is initialised and `c` in range.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is this thread; the size matches the set passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "pinning bench-client to CPU {}: {}",
            cpu_list(cpus),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_defaults() {
        let p = Pinning::parse("auto", 2).unwrap();
        assert_eq!((p.gateway.clone(), p.client.clone()), (vec![1], vec![0]));
        let p = Pinning::parse("auto", 8).unwrap();
        assert_eq!(p.gateway, vec![4, 5, 6, 7]);
        assert_eq!(p.client, vec![0, 1, 2, 3]);
        assert!(Pinning::parse("auto", 1).unwrap().gateway.is_empty());
        let p = Pinning::parse("2-3/0,1", 4).unwrap();
        assert_eq!((p.gateway, p.client), (vec![2, 3], vec![0, 1]));
        assert!(Pinning::parse("5/0", 4).is_err());
        assert!(Pinning::parse("1", 4).is_err());
    }
}
