//! The inline SVG charts' common parts (no script, no external files):
//! the frame, the axes, scaling and a line of values. `iumgate analyze`'s
//! HTML report draws with them, and so does `iumgate audit report`.

use std::fmt::Write as _;

pub use iumgate_core::html::escape as esc;

pub const W: f64 = 760.0;
pub const H: f64 = 260.0;
pub const PAD_L: f64 = 50.0;
pub const PAD_B: f64 = 30.0;
pub const PAD_T: f64 = 12.0;

pub fn x_of(i: f64, n: f64) -> f64 {
    PAD_L + (W - PAD_L - 10.0) * if n > 0.0 { i / n } else { 0.0 }
}

pub fn y_of(v: f64, max: f64) -> f64 {
    H - PAD_B - (H - PAD_B - PAD_T) * if max > 0.0 { v / max } else { 0.0 }
}

pub fn axes(o: &mut String, max: f64, y_label: &str, x_label: &str) {
    let _ = write!(
        o,
        r##"<line x1="{PAD_L}" y1="{b}" x2="{r}" y2="{b}" stroke="#555"/><line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{b}" stroke="#555"/><text x="{tx}" y="{ty}" font-size="11" text-anchor="middle">{x_label}</text><text x="12" y="{my}" font-size="11" transform="rotate(-90 12 {my})" text-anchor="middle">{y_label}</text><text x="{lx}" y="{top}" font-size="10" text-anchor="end">{max}</text><text x="{lx}" y="{b}" font-size="10" text-anchor="end">0</text>"##,
        b = H - PAD_B,
        r = W - 10.0,
        tx = (W + PAD_L) / 2.0,
        ty = H - 6.0,
        my = H / 2.0,
        lx = PAD_L - 4.0,
        top = PAD_T + 8.0,
        max = esc(&format_num(max)),
    );
}

pub fn format_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn polyline(o: &mut String, values: &[u32], max: f64, color: &str, class: &str) {
    let n = values.len().saturating_sub(1).max(1) as f64;
    let pts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x_of(i as f64, n), y_of(*v as f64, max)))
        .collect();
    let _ = write!(
        o,
        r#"<polyline class="{class}" fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
        pts.join(" ")
    );
}
