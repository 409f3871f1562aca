//! The OS version orders against the real comparators: rpm's own `rpm.vercmp` (Debian's `rpm`
//! package, installed by `scripts/install-image-tools`) on generated pairs, and apk-tools'
//! comparison on pairs it ordered (`tests/fixtures/versions/apk-pairs.txt`, recorded by
//! `scripts/gen-apk-version-pairs`: no Debian package ships apk). dpkg's order is checked
//! against `dpkg --compare-versions` in its unit tests.

use std::cmp::Ordering;
use std::path::Path;
use std::process::Command;

use custody::decisions::vuln::{apkversion, rpmversion};

use crate::support::tempdir;

fn install_tools() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-image-tools");
    let out = Command::new(&script)
        .output()
        .expect("install-image-tools runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn symbol(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "<",
        Ordering::Equal => "=",
        Ordering::Greater => ">",
    }
}

#[test]
fn apk_order_agrees_with_apk_tools_on_its_vectors_and_generated_pairs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/versions/apk-pairs.txt");
    let text = std::fs::read_to_string(&path).expect("apk pairs");
    let mut checked = 0;
    let mut invalid_sides = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split(' ').collect();
        let [a, b, op, valid_a, valid_b] = f[..] else {
            panic!("malformed row {line:?}");
        };
        assert_eq!(symbol(apkversion::compare(a, b)), op, "{a} vs {b}");
        assert_eq!(apkversion::is_valid(a), valid_a == "1", "validity of {a}");
        assert_eq!(apkversion::is_valid(b), valid_b == "1", "validity of {b}");
        invalid_sides += usize::from(valid_a == "0") + usize::from(valid_b == "0");
        checked += 1;
    }
    // apk-tools' own 738 ordered rows and 6000 generated ones, some invalid on purpose.
    assert_eq!(checked, 6738);
    assert!(invalid_sides > 100, "{invalid_sides}");
}

fn random_evr(rng: &mut fastrand::Rng) -> String {
    const CHARS: &[u8] = b"0123456789abzAZ.._+~^";
    let part = |rng: &mut fastrand::Rng| {
        let mut s = String::new();
        if rng.bool() {
            s.push(char::from(b'0' + rng.u8(0..10)));
        }
        for _ in 0..rng.usize(1..7) {
            s.push(char::from(CHARS[rng.usize(..CHARS.len())]));
        }
        s
    };
    let mut v = String::new();
    match rng.u8(0..6) {
        0 => v.push_str(&format!("{}:", rng.u8(0..3))),
        1 => v.push(':'),
        _ => {}
    }
    v.push_str(&part(rng));
    if rng.u8(0..3) > 0 {
        v.push('-');
        if rng.u8(0..10) > 0 {
            v.push_str(&part(rng));
        }
    }
    v
}

/// Mutates one byte, so that many pairs differ only a little.
fn near(rng: &mut fastrand::Rng, v: &str) -> String {
    let mut b = v.as_bytes().to_vec();
    let i = rng.usize(..b.len());
    b[i] = b"0123456789a.~^-:"[rng.usize(..16)];
    String::from_utf8(b).expect("ascii")
}

#[test]
fn rpm_order_agrees_with_rpm_vercmp_on_generated_pairs() {
    install_tools();
    let mut rng = fastrand::Rng::with_seed(13);
    let mut pairs: Vec<(String, String)> = vec![
        ("1.0".into(), "1.0-1".into()),
        ("1.0^".into(), "1.0.1".into()),
        ("1.0~rc1".into(), "1.0".into()),
        ("1.01".into(), "1.1".into()),
        ("2:1".into(), "10".into()),
    ];
    while pairs.len() < 5000 {
        let a = random_evr(&mut rng);
        let b = if rng.bool() {
            random_evr(&mut rng)
        } else {
            near(&mut rng, &a)
        };
        pairs.push((a, b));
    }
    let dir = tempdir();
    let file = dir.path().join("pairs.txt");
    let text: String = pairs.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    std::fs::write(&file, text).expect("pairs written");
    // One rpm process for all pairs: rpm's embedded Lua reads the file.
    let lua = format!(
        "%{{lua: local out = {{}}; for l in io.lines('{}') do \
         local a, b = l:match('^(%S+) (%S+)$'); out[#out+1] = tostring(rpm.vercmp(a, b)) end; \
         print(table.concat(out, ' '))}}",
        file.display()
    );
    let out = Command::new("rpm")
        .arg("--eval")
        .arg(lua)
        .output()
        .expect("rpm runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers.len(), pairs.len());
    for ((a, b), want) in pairs.iter().zip(&answers) {
        let got = match rpmversion::compare(a, b).expect("non-empty") {
            Ordering::Less => "-1",
            Ordering::Equal => "0",
            Ordering::Greater => "1",
        };
        assert_eq!(got, want, "{a} vs {b}");
    }
}
