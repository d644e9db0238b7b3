//! Process-level measurement: CPU time, resident memory, file-descriptor
//! limit, and the interleaving machinery (A B A B …, medians).

use std::time::{Duration, Instant};

fn rusage() -> libc::rusage {
    // SAFETY: getrusage writes into the zeroed struct we pass it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    ru
}

/// User + system CPU time of the whole process (all threads).
pub fn process_cpu() -> Duration {
    let ru = rusage();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Voluntary context switches of the whole process so far: each is a
/// thread going to sleep (typically to be woken by another thread).
pub fn voluntary_switches() -> u64 {
    rusage().ru_nvcsw as u64
}

/// Resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm resident field");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Raises the soft open-files limit to the hard limit; returns the new soft
/// limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
        rl.rlim_cur as u64
    }
}

/// One measured window of one contender.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Operations completed inside the window.
    pub ops: u64,
    /// Wall time of the window.
    pub wall: Duration,
    /// Process CPU time spent during the window.
    pub cpu: Duration,
    /// Per-operation latencies in nanoseconds (sequential workloads only).
    pub lat_ns: Vec<u64>,
    /// Voluntary context switches during the window.
    pub vcsw: u64,
    /// Yields of the pipelined loop during the window, when counted
    /// (`--count-yields`) and the contender runs that loop.
    pub yields: Option<u64>,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
    pub fn cpu_ns_per_op(&self) -> f64 {
        if self.ops == 0 {
            return f64::NAN;
        }
        self.cpu.as_nanos() as f64 / self.ops as f64
    }
    /// Latency percentile in nanoseconds (`q` in 0..=1).
    pub fn lat_pct(&mut self, q: f64) -> f64 {
        if self.lat_ns.is_empty() {
            return f64::NAN;
        }
        self.lat_ns.sort_unstable();
        let i = ((self.lat_ns.len() - 1) as f64 * q).round() as usize;
        self.lat_ns[i] as f64
    }
}

/// Measures `f` over a window: wall and process CPU around it. `f` returns
/// the operation count and any latencies.
pub fn window<F: FnOnce() -> (u64, Vec<u64>)>(f: F) -> Sample {
    let (c0, v0, y0) = (process_cpu(), voluntary_switches(), crate::drive::yields());
    let t0 = Instant::now();
    let (ops, lat_ns) = f();
    let wall = t0.elapsed();
    let cpu = process_cpu() - c0;
    let vcsw = voluntary_switches() - v0;
    // (a contender that does not run the pipelined loop has none)
    let yields = crate::drive::yields()
        .zip(y0)
        .filter(|((p1, _), (p0, _))| p1 > p0)
        .map(|((_, y1), (_, y0))| y1 - y0);
    Sample {
        ops,
        wall,
        cpu,
        lat_ns,
        vcsw,
        yields,
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A contender in an interleaved comparison: runs one window of the given
/// length and returns its sample.
pub struct Contender<'a> {
    pub name: String,
    pub run: Box<dyn FnMut(Duration) -> Sample + 'a>,
}

impl<'a> Contender<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut(Duration) -> Sample + 'a) -> Self {
        Contender {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// Runs every contender once briefly (warm-up, discarded), then `rounds`
/// rounds in which each contender runs one window, in an order rotated by one
/// every round (A B C, B C A, …) so drift and position hit all alike.
/// Returns the samples per contender, in the contenders' order.
pub fn interleave(
    contenders: &mut [Contender<'_>],
    rounds: usize,
    win: Duration,
) -> Vec<Vec<Sample>> {
    let n = contenders.len();
    let warm = (win / 4).max(Duration::from_millis(20));
    for c in contenders.iter_mut() {
        let _ = (c.run)(warm);
    }
    let mut out: Vec<Vec<Sample>> = vec![Vec::new(); n];
    for r in 0..rounds {
        for k in 0..n {
            let i = (r + k) % n;
            let s = (contenders[i].run)(win);
            out[i].push(s);
        }
    }
    out
}

/// Medians over the rounds of a contender's samples.
pub struct Summary {
    pub rate: f64,
    pub cpu_ns_per_op: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    /// Process CPU time over wall time: how many cores were busy.
    pub cores: f64,
    /// Voluntary context switches per operation.
    pub vcsw_per_op: f64,
    /// Operations per yield of the pipelined loop, when counted.
    pub ops_per_yield: Option<f64>,
}

pub fn summarize(samples: &mut [Sample]) -> Summary {
    Summary {
        rate: median(samples.iter().map(Sample::rate).collect()),
        cpu_ns_per_op: median(samples.iter().map(Sample::cpu_ns_per_op).collect()),
        p50_ns: median(samples.iter_mut().map(|s| s.lat_pct(0.50)).collect()),
        p99_ns: median(samples.iter_mut().map(|s| s.lat_pct(0.99)).collect()),
        vcsw_per_op: median(
            samples
                .iter()
                .map(|s| s.vcsw as f64 / s.ops.max(1) as f64)
                .collect(),
        ),
        cores: median(
            samples
                .iter()
                .map(|s| s.cpu.as_secs_f64() / s.wall.as_secs_f64())
                .collect(),
        ),
        ops_per_yield: samples.iter().all(|s| s.yields.is_some()).then(|| {
            median(
                samples
                    .iter()
                    .map(|s| s.ops as f64 / s.yields.unwrap_or(0) as f64)
                    .collect(),
            )
        }),
    }
}
