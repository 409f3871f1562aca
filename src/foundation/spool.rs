//! Fixed-size records sorted in byte order with memory bounded by one run: records are sorted
//! in memory [`RUN_BYTES`] at a time, each full run is written to an anonymous temporary file,
//! and the runs are merged as they are read back. Sorting 100,000 records or 1,000,000 holds the
//! same megabyte. A caller lays out each record with its sort key first. [`Tape`] keeps records
//! on disk in the order written and reads a stretch of them back by position.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Bytes of records sorted in memory before they are written out as one run.
pub const RUN_BYTES: usize = 1 << 20;
/// Read buffer of each run while the runs are merged.
const MERGE_BUFFER: usize = 16 * 1024;

/// Collects records, then hands them back sorted ([`Sorter::finish`]).
pub struct Sorter {
    size: usize,
    run_bytes: usize,
    run: Vec<u8>,
    spilled: Vec<File>,
    count: u64,
}

impl Sorter {
    /// A sorter of records of `size` bytes each.
    pub fn new(size: usize) -> Sorter {
        Sorter::with_run_bytes(size, RUN_BYTES)
    }

    /// A sorter that writes a run out every `run_bytes` (at least one record).
    pub fn with_run_bytes(size: usize, run_bytes: usize) -> Sorter {
        assert!(size > 0, "records are at least one byte");
        Sorter {
            size,
            run_bytes: run_bytes.max(size),
            run: Vec::new(),
            spilled: Vec::new(),
            count: 0,
        }
    }

    /// Adds one record; writes the run out when it is full.
    pub fn push(&mut self, record: &[u8]) -> io::Result<()> {
        assert_eq!(
            record.len(),
            self.size,
            "every record has the sorter's size"
        );
        if self.run.len() + self.size > self.run_bytes {
            self.spill()?;
        }
        self.run.extend_from_slice(record);
        self.count += 1;
        Ok(())
    }

    /// Records pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn sorted_run(&self) -> Vec<&[u8]> {
        let mut order: Vec<&[u8]> = self.run.chunks_exact(self.size).collect();
        order.sort_unstable();
        order
    }

    fn spill(&mut self) -> io::Result<()> {
        let mut file = tempfile::tempfile()?;
        let mut out = BufWriter::new(&mut file);
        for record in self.sorted_run() {
            out.write_all(record)?;
        }
        out.flush()?;
        drop(out);
        file.seek(SeekFrom::Start(0))?;
        self.spilled.push(file);
        self.run.clear();
        Ok(())
    }

    /// Every record pushed, in byte order. Nothing touches the disk when they fit in one run.
    pub fn finish(mut self) -> io::Result<Sorted> {
        if self.spilled.is_empty() {
            let run = self.sorted_run().concat();
            return Ok(Sorted {
                size: self.size,
                current: Vec::new(),
                source: Source::Memory { run, next: 0 },
            });
        }
        if !self.run.is_empty() {
            self.spill()?;
        }
        let mut runs = Vec::with_capacity(self.spilled.len());
        let mut heads = BinaryHeap::new();
        for (i, file) in self.spilled.into_iter().enumerate() {
            let mut run = BufReader::with_capacity(MERGE_BUFFER, file);
            let mut head = vec![0; self.size];
            if read_record(&mut run, &mut head)? {
                heads.push(Reverse((head, i)));
            }
            runs.push(run);
        }
        Ok(Sorted {
            size: self.size,
            current: Vec::new(),
            source: Source::Merge { runs, heads },
        })
    }
}

/// Reads one record; false at a clean end of the input, an error at a torn one.
fn read_record(from: &mut impl Read, record: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < record.len() {
        match from.read(&mut record[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a spooled record was cut short",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Records in byte order, read one at a time ([`Sorted::next`]).
pub struct Sorted {
    size: usize,
    current: Vec<u8>,
    source: Source,
}

enum Source {
    Memory {
        run: Vec<u8>,
        next: usize,
    },
    /// Each run's smallest unread record, smallest first.
    Merge {
        runs: Vec<BufReader<File>>,
        heads: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    },
}

impl Sorted {
    /// The next record, or `None` after the last.
    pub fn next_record(&mut self) -> io::Result<Option<&[u8]>> {
        match &mut self.source {
            Source::Memory { run, next } => {
                let Some(record) = run.get(*next..*next + self.size) else {
                    return Ok(None);
                };
                *next += self.size;
                Ok(Some(record))
            }
            Source::Merge { runs, heads } => {
                let Some(Reverse((head, i))) = heads.pop() else {
                    return Ok(None);
                };
                // The buffer of the record handed out last time takes the run's next record.
                let mut refill = std::mem::replace(&mut self.current, head);
                refill.resize(self.size, 0);
                if read_record(&mut runs[i], &mut refill)? {
                    heads.push(Reverse((refill, i)));
                }
                Ok(Some(&self.current))
            }
        }
    }
}

/// Records kept on disk in the order written, read back by position.
pub struct Tape {
    size: usize,
    out: BufWriter<File>,
    count: u64,
}

impl Tape {
    pub fn new(size: usize) -> io::Result<Tape> {
        assert!(size > 0, "records are at least one byte");
        Ok(Tape {
            size,
            out: BufWriter::new(tempfile::tempfile()?),
            count: 0,
        })
    }

    /// Appends one record; its position is the number of records before it.
    pub fn push(&mut self, record: &[u8]) -> io::Result<u64> {
        assert_eq!(record.len(), self.size, "every record has the tape's size");
        self.out.write_all(record)?;
        self.count += 1;
        Ok(self.count - 1)
    }

    /// The tape, ready to be read.
    pub fn finish(self) -> io::Result<Reel> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok(Reel {
            size: self.size,
            count: self.count,
            file,
        })
    }
}

/// A written [`Tape`].
pub struct Reel {
    size: usize,
    count: u64,
    file: File,
}

impl Reel {
    /// Records on the tape.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Hands `visit` the `count` records from position `start` on.
    pub fn read(&self, start: u64, count: u64, visit: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        if start.checked_add(count).is_none_or(|end| end > self.count) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "records {start}+{count} are past the end of a tape of {}",
                    self.count
                ),
            ));
        }
        let size = self.size as u64;
        let mut file = &self.file;
        file.seek(SeekFrom::Start(start * size))?;
        // No more read ahead than the stretch: one tag is 128 bytes, not a 16 KiB refill.
        let stretch = usize::try_from(count.saturating_mul(size)).unwrap_or(usize::MAX);
        let mut records = BufReader::with_capacity(stretch.clamp(1, MERGE_BUFFER), file);
        let mut record = vec![0; self.size];
        for _ in 0..count {
            if !read_record(&mut records, &mut record)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tape ended early",
                ));
            }
            visit(&record);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: u32) -> Vec<[u8; 6]> {
        // A scrambled order with repeats: every key appears twice.
        (0..n)
            .map(|i| {
                let k = (i.wrapping_mul(2_654_435_761) % (n / 2 + 1)).to_be_bytes();
                [k[0], k[1], k[2], k[3], (i % 7) as u8, 0xff]
            })
            .collect()
    }

    fn drain(mut sorted: Sorted) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = sorted.next_record().unwrap() {
            out.push(r.to_vec());
        }
        out
    }

    #[test]
    fn merged_runs_come_back_in_byte_order_same_as_in_memory() {
        let input = records(5_000);
        let mut want: Vec<Vec<u8>> = input.iter().map(|r| r.to_vec()).collect();
        want.sort();
        // One record per run, a few per run, and all in memory.
        for run_bytes in [1, 6 * 7, 6 * 1000, RUN_BYTES] {
            let mut sorter = Sorter::with_run_bytes(6, run_bytes);
            for r in &input {
                sorter.push(r).unwrap();
            }
            assert_eq!(sorter.len(), 5_000);
            assert_eq!(
                drain(sorter.finish().unwrap()),
                want,
                "run of {run_bytes} bytes"
            );
        }
    }

    #[test]
    fn nothing_pushed_reads_nothing() {
        for run_bytes in [1, RUN_BYTES] {
            let sorter = Sorter::with_run_bytes(3, run_bytes);
            assert!(sorter.is_empty());
            assert!(drain(sorter.finish().unwrap()).is_empty());
        }
    }

    #[test]
    fn a_tape_reads_back_any_stretch_and_refuses_one_past_its_end() {
        let mut tape = Tape::new(4).unwrap();
        for i in 0u32..1000 {
            assert_eq!(tape.push(&i.to_be_bytes()).unwrap(), u64::from(i));
        }
        let reel = tape.finish().unwrap();
        for (start, count) in [(0, 1), (999, 1), (10, 500), (0, 1000), (500, 0)] {
            let mut got = Vec::new();
            reel.read(start, count, &mut |r| {
                got.push(u32::from_be_bytes(r.try_into().unwrap()));
            })
            .unwrap();
            let want: Vec<u32> = (start as u32..(start + count) as u32).collect();
            assert_eq!(got, want);
        }
        for (start, count) in [(1000, 1), (999, 2), (u64::MAX, 1)] {
            let err = reel.read(start, count, &mut |_| {}).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{start}+{count}");
        }
    }

    #[test]
    fn a_torn_record_is_an_error_not_a_short_one() {
        let mut r: &[u8] = &[1, 2, 3, 4, 5];
        let mut record = [0; 3];
        assert!(read_record(&mut r, &mut record).unwrap());
        let err = read_record(&mut r, &mut record).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut empty: &[u8] = &[];
        assert!(!read_record(&mut empty, &mut record).unwrap());
    }
}
