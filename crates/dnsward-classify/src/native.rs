//! Native forward pass of the DGA graph.
//!
//! tract runs the ONNX graph correctly but a single-row run costs ~100 µs, almost all of it
//! per-run overhead (state set-up, the f16 -> f32 `Cast` of the whole gathered block, small
//! Gemms) for what is ~20k multiply-adds. At load, [`NativeNet::from_proto`] reads the weight
//! initialisers out of the parsed ONNX model and recognises the graph structure written by
//! `models/train/train.py` (`export_onnx`):
//!
//! ```text
//! bag_i    = ReduceSum(Cast(Gather(table_i, ids_i)), axis 1) [* per-row scale input]
//! lookup_j = Cast(Gather(table_j, id_j))
//! x        = Concat(bags, lookups, dense inputs; axis 1)
//! h        = Relu(Gemm(... Relu(Gemm(x))))          (any number of hidden layers)
//! logit    = Gemm(h)        (1 output)
//! score    = Sigmoid(logit [* inv_temp])
//! family   = Softmax(Gemm(h))
//! ```
//!
//! Every shape (embedding rows and width, hidden sizes, number of families) comes from the
//! weights, so a retrained model with other dimensions still runs natively. Anything else in
//! the graph (another op, another wiring, an unused node) is an error here and the caller falls
//! back to the tract plan. The embedding tables stay in f16 when the CPU converts f16 in
//! hardware (F16C) and are widened to f32 (exactly) otherwise; all arithmetic is f32.

use std::cell::RefCell;
use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::features::Features;

/// What each graph input carries, by position: the order in which `DgaModel` feeds the tract
/// plan (`ids`, `inv_cnt`, `word_ids`, `inv_wcnt`, `tld`, `dense`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// n-gram ids, zero-padded to `Widths::ids`.
    Ids,
    /// 1 / max(number of n-gram ids, 1), shape [N, 1].
    IdsInv,
    /// dictionary word ids, zero-padded to `Widths::words`.
    Words,
    /// 1 / max(number of word ids, 1), shape [N, 1].
    WordsInv,
    /// TLD id, shape [N].
    Tld,
    /// dense features, shape [N, `Widths::dense`].
    Dense,
}

const SLOTS: [Slot; 6] = [
    Slot::Ids,
    Slot::IdsInv,
    Slot::Words,
    Slot::WordsInv,
    Slot::Tld,
    Slot::Dense,
];

/// Widths of the padded inputs as fed to the tract plan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Widths {
    pub ids: usize,
    pub words: usize,
    pub dense: usize,
}

enum TableData {
    /// IEEE half bits, converted with F16C at run time.
    F16(Vec<u16>),
    F32(Vec<f32>),
}

/// An embedding table `[rows, dim]`, row-major.
struct Table {
    rows: usize,
    dim: usize,
    data: TableData,
    /// Row 0 (the padding id) is all zeros, so padding adds nothing.
    row0_zero: bool,
}

impl Table {
    fn from_tensor(t: &Tensor, f16c: bool) -> Result<Table, String> {
        let shape = t.shape();
        if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
            return Err(format!("embedding table of shape {shape:?}"));
        }
        let (rows, dim) = (shape[0], shape[1]);
        let data = if t.datum_type() == f16::datum_type() && f16c {
            let v = t.to_plain_array_view::<f16>().map_err(|e| e.to_string())?;
            TableData::F16(v.iter().map(|h| h.to_bits()).collect())
        } else {
            TableData::F32(to_f32_vec(t)?)
        };
        let row0_zero = match &data {
            TableData::F16(d) => d[..dim].iter().all(|&b| b & 0x7fff == 0),
            TableData::F32(d) => d[..dim].iter().all(|&x| x == 0.0),
        };
        Ok(Table {
            rows,
            dim,
            data,
            row0_zero,
        })
    }

    /// `acc[..dim] += sum of rows ids`; false when an id is out of range.
    fn add_rows(&self, ids: &[i64], acc: &mut [f32]) -> bool {
        let acc = &mut acc[..self.dim];
        match &self.data {
            #[cfg(target_arch = "x86_64")]
            TableData::F16(d) => {
                // SAFETY: F16 tables are only built when F16C (and AVX) were detected at load.
                unsafe { add_rows_f16c(d, self.rows, self.dim, ids, acc) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            TableData::F16(d) => {
                for &id in ids {
                    if id < 0 || id as usize >= self.rows {
                        return false;
                    }
                    let row = &d[id as usize * self.dim..][..self.dim];
                    for (a, &h) in acc.iter_mut().zip(row) {
                        *a += f16::from_bits(h).to_f32();
                    }
                }
                true
            }
            TableData::F32(d) => {
                for &id in ids {
                    if id < 0 || id as usize >= self.rows {
                        return false;
                    }
                    let row = &d[id as usize * self.dim..][..self.dim];
                    for (a, &x) in acc.iter_mut().zip(row) {
                        *a += x;
                    }
                }
                true
            }
        }
    }

    /// `acc[..dim] += times * row 0` (the padding rows the graph sums over).
    fn add_padding(&self, times: usize, acc: &mut [f32]) {
        if times == 0 || self.row0_zero {
            return;
        }
        let n = times as f32;
        for (k, a) in acc[..self.dim].iter_mut().enumerate() {
            *a += n * self.get(0, k);
        }
    }

    fn get(&self, row: usize, k: usize) -> f32 {
        match &self.data {
            TableData::F16(d) => f16::from_bits(d[row * self.dim + k]).to_f32(),
            TableData::F32(d) => d[row * self.dim + k],
        }
    }

    /// `out[..dim] = row id`; false when out of range.
    fn copy_row(&self, id: i64, out: &mut [f32]) -> bool {
        if id < 0 || id as usize >= self.rows {
            return false;
        }
        for (k, o) in out[..self.dim].iter_mut().enumerate() {
            *o = self.get(id as usize, k);
        }
        true
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn add_rows_f16c(
    data: &[u16],
    rows: usize,
    dim: usize,
    ids: &[i64],
    acc: &mut [f32],
) -> bool {
    use std::arch::x86_64::*;
    debug_assert!(acc.len() == dim && data.len() == rows * dim);
    let chunks = dim / 8;
    // Tables up to 64 wide in whole 8-lane chunks (the shipped ones are 48 and 32) keep the
    // sums in registers across all rows: a sum kept in `acc` makes every row wait for the
    // previous row's store to be forwarded. Same additions in the same order, same results.
    if dim.is_multiple_of(8) {
        // SAFETY (every arm): dim == 8 C == acc.len(), data is rows x dim, features as ours.
        unsafe {
            match chunks {
                1 => return add_rows_f16c_regs::<1>(data, rows, ids, acc),
                2 => return add_rows_f16c_regs::<2>(data, rows, ids, acc),
                3 => return add_rows_f16c_regs::<3>(data, rows, ids, acc),
                4 => return add_rows_f16c_regs::<4>(data, rows, ids, acc),
                5 => return add_rows_f16c_regs::<5>(data, rows, ids, acc),
                6 => return add_rows_f16c_regs::<6>(data, rows, ids, acc),
                7 => return add_rows_f16c_regs::<7>(data, rows, ids, acc),
                8 => return add_rows_f16c_regs::<8>(data, rows, ids, acc),
                _ => {}
            }
        }
    }
    for &id in ids {
        if id < 0 || id as usize >= rows {
            return false;
        }
        let row = &data[id as usize * dim..][..dim];
        for c in 0..chunks {
            // SAFETY: c * 8 + 8 <= dim == row.len() == acc.len().
            unsafe {
                let p = acc.as_mut_ptr().add(c * 8);
                let w = u16::load8(row.as_ptr().add(c * 8));
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), w));
            }
        }
        for k in chunks * 8..dim {
            acc[k] += f16::from_bits(row[k]).to_f32();
        }
    }
    true
}

/// [`add_rows_f16c`] for tables `8 C` wide, the sums held in `C` registers.
///
/// # Safety
/// `acc.len() == 8 C`, `data.len() == rows * 8 C`, and the CPU has AVX and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn add_rows_f16c_regs<const C: usize>(
    data: &[u16],
    rows: usize,
    ids: &[i64],
    acc: &mut [f32],
) -> bool {
    use std::arch::x86_64::*;
    let dim = 8 * C;
    assert!(acc.len() == dim && data.len() == rows * dim);
    // SAFETY: every load/store below is inside acc (8 C entries) or inside row id of data,
    // id < rows checked first.
    unsafe {
        let mut sum = [_mm256_setzero_ps(); C];
        for (c, v) in sum.iter_mut().enumerate() {
            *v = _mm256_loadu_ps(acc.as_ptr().add(8 * c));
        }
        let mut ok = true;
        for &id in ids {
            if id < 0 || id as usize >= rows {
                ok = false;
                break;
            }
            let row = data.as_ptr().add(id as usize * dim);
            for (c, v) in sum.iter_mut().enumerate() {
                *v = _mm256_add_ps(*v, u16::load8(row.add(8 * c)));
            }
        }
        for (c, v) in sum.iter().enumerate() {
            _mm256_storeu_ps(acc.as_mut_ptr().add(8 * c), *v);
        }
        ok
    }
}

/// Weights of a dense layer, input-major (`[n_in][n_out]`).
enum LayerWeights {
    F32(Vec<f32>),
    /// IEEE half bits: the ONNX file stores the layer as an f16 initialiser behind a `Cast` to
    /// float, so these are the exact values tract multiplies by; half the bytes to stream per
    /// name (the hidden layers do not fit in L1, and streaming them from L2 bounds their speed).
    F16(Vec<u16>),
}

/// A dense layer `y = x W + b`.
struct Layer {
    n_in: usize,
    n_out: usize,
    w: LayerWeights,
    b: Vec<f32>,
}

impl Layer {
    /// `out = b + x W` for the input `x` given by its non-zero entries (`NonZero::compact`):
    /// half of them are zero after a ReLU, and skipping them by a list rather than a branch per
    /// input and output tile avoids a misprediction per tile on the ReLU pattern.
    fn forward(&self, nz: &NonZero, out: &mut [f32], simd: Simd) {
        let out = &mut out[..self.n_out];
        let (idx, val) = (nz.idx(), nz.val());
        debug_assert!(idx.iter().all(|&i| (i as usize) < self.n_in));
        match &self.w {
            #[cfg(target_arch = "x86_64")]
            LayerWeights::F32(w) if simd.fma => {
                // SAFETY: AVX2, FMA and F16C were detected at load; `compact` returns indices
                // < n_in and `w` is [n_in][n_out] (checked when the layer was read, asserted in
                // the kernel).
                unsafe { affine_fma::<f32>(w, &self.b, idx, val, out) }
            }
            #[cfg(target_arch = "x86_64")]
            LayerWeights::F16(w) if simd.fma => {
                // SAFETY: as above.
                unsafe { affine_fma::<u16>(w, &self.b, idx, val, out) }
            }
            LayerWeights::F32(w) => affine(w, &self.b, idx, val, out),
            LayerWeights::F16(w) => affine(w, &self.b, idx, val, out),
        }
    }
}

/// CPU features found at load.
#[derive(Clone, Copy, Debug)]
struct Simd {
    /// AVX2, FMA and F16C: every feature the dense-layer kernel (`affine_fma`, for f32 and f16
    /// weights alike) is compiled with, so one flag guards every call to it.
    fma: bool,
    /// AVX and F16C (f16 tables and weights widened in registers).
    f16c: bool,
}

/// The non-zero entries of a layer's input, in input order.
#[derive(Default)]
struct NonZero {
    idx: Vec<u32>,
    val: Vec<f32>,
    len: usize,
}

impl NonZero {
    fn idx(&self) -> &[u32] {
        &self.idx[..self.len]
    }

    fn val(&self) -> &[f32] {
        &self.val[..self.len]
    }

    /// Keeps the non-zero entries of `x` (NaN counts as non-zero, -0.0 as zero), in order.
    fn compact(&mut self, x: &[f32], simd: Simd) {
        // Room for a whole 8-lane store at any position.
        if self.idx.len() < x.len() + 8 {
            self.idx.resize(x.len() + 8, 0);
            self.val.resize(x.len() + 8, 0.0);
        }
        let mut m = 0;
        let mut i0 = 0;
        #[cfg(target_arch = "x86_64")]
        if simd.fma {
            // SAFETY: AVX2 was detected at load; buffers have x.len() + 8 entries (above).
            (m, i0) = unsafe { compact_avx2(x, &mut self.idx, &mut self.val) };
        }
        let _ = simd;
        let (idx, val) = (&mut self.idx[..], &mut self.val[..]);
        for (i, &xi) in x.iter().enumerate().skip(i0) {
            // Branch-free: m <= i < x.len().
            idx[m] = i as u32;
            val[m] = xi;
            m += (xi != 0.0) as usize;
        }
        self.len = m;
    }
}

/// For each 8-bit mask of kept lanes, the lane indices packed to the front.
const COMPRESS: [[u32; 8]; 256] = {
    let mut t = [[0u32; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut k, mut lane) = (0, 0);
        while lane < 8 {
            if mask & (1 << lane) != 0 {
                t[mask][k] = lane as u32;
                k += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    t
};

/// The whole 8-lane blocks of `compact`: compare with zero, pack the kept lanes and their
/// indices to the front with one permutation, store all 8 lanes and advance by the number kept.
/// Returns (entries kept, inputs consumed).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn compact_avx2(x: &[f32], idx: &mut [u32], val: &mut [f32]) -> (usize, usize) {
    use std::arch::x86_64::*;
    assert!(idx.len() >= x.len() + 8 && val.len() >= x.len() + 8);
    let blocks = x.len() / 8;
    let mut m = 0;
    // SAFETY: block b reads x[8b .. 8b + 8] (b < blocks) and writes idx/val[m .. m + 8] with
    // m <= 8b, inside the x.len() + 8 entries asserted above.
    unsafe {
        let zero = _mm256_setzero_ps();
        let mut base = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let eight = _mm256_set1_epi32(8);
        for b in 0..blocks {
            let v = _mm256_loadu_ps(x.as_ptr().add(8 * b));
            let keep = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ)) as usize;
            let perm = _mm256_loadu_si256(COMPRESS[keep].as_ptr() as *const __m256i);
            _mm256_storeu_ps(val.as_mut_ptr().add(m), _mm256_permutevar8x32_ps(v, perm));
            _mm256_storeu_si256(
                idx.as_mut_ptr().add(m) as *mut __m256i,
                _mm256_permutevar8x32_epi32(base, perm),
            );
            m += keep.count_ones() as usize;
            base = _mm256_add_epi32(base, eight);
        }
    }
    (m, blocks * 8)
}

/// A stored weight: f32, or f16 bits widened exactly to f32.
trait Weight: Copy {
    fn to_f32(self) -> f32;
    /// Eight consecutive weights as f32.
    ///
    /// # Safety
    /// `p` must point to 8 readable weights, and the CPU must have AVX (and F16C for f16).
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Weight for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
}

impl Weight for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::from_bits(self).to_f32()
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const u16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

/// Scalar `out = b + sum over kept inputs of val * W[idx]`, one fused multiply-add per term in
/// input order: the same arithmetic as the FMA kernel, so both paths give identical results.
fn affine<W: Weight>(w: &[W], b: &[f32], idx: &[u32], val: &[f32], out: &mut [f32]) {
    let n = out.len();
    out.copy_from_slice(&b[..n]);
    for (&i, &v) in idx.iter().zip(val) {
        let row = &w[i as usize * n..][..n];
        for (o, &wv) in out.iter_mut().zip(row) {
            *o = v.mul_add(wv.to_f32(), *o);
        }
    }
}

/// AVX2/FMA `out = b + sum over kept inputs of val * W[idx]`: outputs in tiles of up to 64 (eight
/// 8-wide accumulators kept in registers across all inputs, enough independent FMA chains to
/// hide their latency), then a scalar tail of fewer than 8 outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn affine_fma<W: Weight>(w: &[W], b: &[f32], idx: &[u32], val: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(b.len() >= n && idx.len() == val.len());
    assert!(idx.iter().all(|&i| (i as usize + 1) * n <= w.len()));
    let mut j0 = 0;
    while j0 + 64 <= n {
        // SAFETY (all tiles): j0 + 8 K <= n, and every row i has n entries in w (asserted).
        unsafe { tile::<W, 8>(w, b, idx, val, out, j0) };
        j0 += 64;
    }
    unsafe {
        match (n - j0) / 8 {
            1 => tile::<W, 1>(w, b, idx, val, out, j0),
            2 => tile::<W, 2>(w, b, idx, val, out, j0),
            3 => tile::<W, 3>(w, b, idx, val, out, j0),
            4 => tile::<W, 4>(w, b, idx, val, out, j0),
            5 => tile::<W, 5>(w, b, idx, val, out, j0),
            6 => tile::<W, 6>(w, b, idx, val, out, j0),
            7 => tile::<W, 7>(w, b, idx, val, out, j0),
            _ => {}
        }
    }
    j0 += (n - j0) / 8 * 8;
    for j in j0..n {
        let mut a = b[j];
        for (&i, &v) in idx.iter().zip(val) {
            a = v.mul_add(w[i as usize * n + j].to_f32(), a);
        }
        out[j] = a;
    }
}

/// `K` 8-wide accumulators for outputs `j0 .. j0 + 8 K`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn tile<W: Weight, const K: usize>(
    w: &[W],
    b: &[f32],
    idx: &[u32],
    val: &[f32],
    out: &mut [f32],
    j0: usize,
) {
    use std::arch::x86_64::*;
    let n = out.len();
    debug_assert!(j0 + 8 * K <= n);
    // SAFETY: the caller guarantees j0 + 8 K <= n <= b.len() and (i + 1) n <= w.len() for every
    // index i.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); K];
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(b.as_ptr().add(j0 + 8 * k));
        }
        for (&i, &v) in idx.iter().zip(val) {
            let xv = _mm256_set1_ps(v);
            let row = w.as_ptr().add(i as usize * n + j0);
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(xv, W::load8(row.add(8 * k)), *a);
            }
        }
        for (k, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(j0 + 8 * k), *a);
        }
    }
}

enum Segment {
    /// Sum of the embedding rows of a padded id list (padding included, as the graph does),
    /// optionally times a per-row scale input.
    Bag {
        list: Slot,
        table: Table,
        scale: Option<Slot>,
    },
    /// One embedding row.
    Lookup { slot: Slot, table: Table },
    /// The dense features as they are.
    Dense,
}

/// The recognised graph with its weights.
pub(crate) struct NativeNet {
    widths: Widths,
    segments: Vec<Segment>,
    in_dim: usize,
    hidden: Vec<Layer>,
    logit: Layer,
    family: Layer,
    inv_temp: f32,
    simd: Simd,
    /// Largest activation width (for the scratch buffers).
    max_width: usize,
}

impl std::fmt::Debug for NativeNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<usize> = self.hidden.iter().map(|l| l.n_out).collect();
        f.debug_struct("NativeNet")
            .field("in_dim", &self.in_dim)
            .field("hidden", &dims)
            .field("families", &self.family.n_out)
            .finish()
    }
}

#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    a: Vec<f32>,
    fam: Vec<f32>,
    nz: NonZero,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One row's outputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    pub score: f32,
    /// Index and probability of the most probable family.
    pub best: usize,
    pub best_prob: f32,
}

impl NativeNet {
    /// Recognises the graph and loads its weights; `Err(reason)` when the graph is not the known
    /// structure.
    pub fn from_proto(
        proto: &pb::ModelProto,
        widths: Widths,
        n_families: usize,
    ) -> Result<NativeNet, String> {
        #[cfg(target_arch = "x86_64")]
        let simd = Simd {
            f16c: std::arch::is_x86_feature_detected!("avx")
                && std::arch::is_x86_feature_detected!("f16c"),
            fma: std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c"),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let simd = Simd {
            f16c: true,
            fma: false,
        };
        let graph = proto.graph.as_ref().ok_or("no graph")?;
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .unwrap_or(11);
        let mut g = Graph::new(graph, simd.f16c)?;

        if graph.output.len() != 3 {
            return Err(format!("{} graph outputs, expected 3", graph.output.len()));
        }
        let (score_name, fam_name, logit_name) = (
            graph.output[0].name.as_str(),
            graph.output[1].name.as_str(),
            graph.output[2].name.as_str(),
        );

        // score = Sigmoid(logit [* inv_temp])
        let sig = g.node(score_name, "Sigmoid")?;
        let z = input(sig, 0)?;
        let inv_temp = if z == logit_name {
            1.0
        } else {
            let mul = g.node(z, "Mul")?;
            let (a, b) = (input(mul, 0)?, input(mul, 1)?);
            let other = if a == logit_name {
                b
            } else if b == logit_name {
                a
            } else {
                return Err("score is not a function of the logit output".into());
            };
            let t = g.init_f32(other)?;
            if t.len() != 1 {
                return Err("score temperature is not a scalar".into());
            }
            t[0]
        };

        // heads
        let lg = g.node(logit_name, "Gemm")?;
        let logit = g.gemm(lg)?;
        if logit.n_out != 1 {
            return Err(format!("logit head has {} outputs", logit.n_out));
        }
        let sm = g.node(fam_name, "Softmax")?;
        let axis = attr_i(sm, "axis").unwrap_or(if opset >= 13 { -1 } else { 1 });
        if axis != 1 && axis != -1 {
            return Err(format!("Softmax over axis {axis}"));
        }
        let fg = g.node(input(sm, 0)?, "Gemm")?;
        let family = g.gemm(fg)?;
        if family.n_out != n_families {
            return Err(format!(
                "family head has {} outputs, the model lists {n_families} families",
                family.n_out
            ));
        }
        let h = input(lg, 0)?;
        if input(fg, 0)? != h {
            return Err("the two heads read different tensors".into());
        }

        // hidden layers: Relu(Gemm(...)) back to the Concat
        let mut hidden = Vec::new();
        let mut cur = h;
        while g.op(cur) == Some("Relu") {
            let r = g.node(cur, "Relu")?;
            let gm = g.node(input(r, 0)?, "Gemm")?;
            hidden.push(g.gemm(gm)?);
            cur = input(gm, 0)?;
        }
        hidden.reverse();
        let cat = g.node(cur, "Concat")?;
        let axis = attr_i(cat, "axis").ok_or("Concat without axis")?;
        if axis != 1 && axis != -1 {
            return Err(format!("Concat over axis {axis}"));
        }
        let mut segments = Vec::new();
        let mut in_dim = 0;
        for name in &cat.input {
            let s = g.segment(name)?;
            in_dim += match &s {
                Segment::Bag { table, .. } | Segment::Lookup { table, .. } => table.dim,
                Segment::Dense => widths.dense,
            };
            segments.push(s);
        }

        // shapes chain
        let mut width = in_dim;
        for (i, l) in hidden.iter().enumerate() {
            if l.n_in != width {
                return Err(format!(
                    "hidden layer {i} takes {} inputs, previous width {width}",
                    l.n_in
                ));
            }
            width = l.n_out;
        }
        for (what, l) in [("logit", &logit), ("family", &family)] {
            if l.n_in != width {
                return Err(format!(
                    "{what} head takes {} inputs, previous width {width}",
                    l.n_in
                ));
            }
        }
        if let Some(i) = g.used.iter().position(|u| !u) {
            return Err(format!(
                "node {} ({}) is not part of the known structure",
                graph.node[i].name, graph.node[i].op_type
            ));
        }
        let max_width = hidden
            .iter()
            .map(|l| l.n_out)
            .chain([in_dim, n_families])
            .max()
            .unwrap_or(in_dim);
        Ok(NativeNet {
            widths,
            segments,
            in_dim,
            hidden,
            logit,
            family,
            inv_temp,
            simd,
            max_width,
        })
    }

    /// Forward pass for one row; `None` when an id is out of range of its table. Family
    /// probabilities are written into `fam` (length = number of families).
    fn forward_into(&self, f: &Features, s: &mut Scratch) -> Option<(f32, f32)> {
        let w = self.max_width;
        for v in [&mut s.x, &mut s.a] {
            if v.len() < w {
                v.resize(w, 0.0);
            }
        }
        s.fam.resize(self.family.n_out, 0.0);
        let n_ids = f.ids.len().min(self.widths.ids);
        let n_words = f.word_ids.len().min(self.widths.words);
        let scalar = |slot: Slot| match slot {
            Slot::IdsInv => 1.0 / (n_ids.max(1) as f32),
            Slot::WordsInv => 1.0 / (n_words.max(1) as f32),
            _ => unreachable!("checked at load"),
        };
        let mut off = 0;
        for seg in &self.segments {
            match seg {
                Segment::Bag { list, table, scale } => {
                    let (ids, width) = match list {
                        Slot::Ids => (&f.ids[..n_ids], self.widths.ids),
                        _ => (&f.word_ids[..n_words], self.widths.words),
                    };
                    let acc = &mut s.x[off..off + table.dim];
                    acc.fill(0.0);
                    if !table.add_rows(ids, acc) {
                        return None;
                    }
                    table.add_padding(width - ids.len(), acc);
                    if let Some(sc) = scale {
                        let k = scalar(*sc);
                        acc.iter_mut().for_each(|a| *a *= k);
                    }
                    off += table.dim;
                }
                Segment::Lookup { slot, table } => {
                    debug_assert_eq!(*slot, Slot::Tld);
                    if !table.copy_row(f.tld, &mut s.x[off..off + table.dim]) {
                        return None;
                    }
                    off += table.dim;
                }
                Segment::Dense => {
                    if f.dense.len() != self.widths.dense {
                        return None;
                    }
                    s.x[off..off + f.dense.len()].copy_from_slice(&f.dense);
                    off += f.dense.len();
                }
            }
        }
        debug_assert_eq!(off, self.in_dim);
        s.nz.compact(&s.x[..self.in_dim], self.simd);
        for l in &self.hidden {
            l.forward(&s.nz, &mut s.a, self.simd);
            let h = &mut s.a[..l.n_out];
            h.iter_mut().for_each(|v| *v = v.max(0.0));
            s.nz.compact(h, self.simd);
        }
        // Both heads read the last hidden layer, compacted once.
        let mut z = [0f32; 1];
        self.logit.forward(&s.nz, &mut z, self.simd);
        self.family.forward(&s.nz, &mut s.fam, self.simd);
        // softmax
        let m = s.fam.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in s.fam.iter_mut() {
            *v = (*v - m).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        s.fam.iter_mut().for_each(|v| *v *= inv);
        let logit = z[0];
        let score = 1.0 / (1.0 + (-(logit * self.inv_temp)).exp());
        Some((logit, score))
    }

    /// Score, logit and top family of one row.
    pub fn run(&self, f: &Features) -> Option<Output> {
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let (_, score) = self.forward_into(f, s)?;
            let (mut best, mut best_prob) = (0usize, f32::MIN);
            for (j, &p) in s.fam.iter().enumerate() {
                if p > best_prob {
                    best = j;
                    best_prob = p;
                }
            }
            Some(Output {
                score,
                best,
                best_prob,
            })
        })
    }

    /// `(score, family probabilities, logit)` of one row.
    pub fn run_full(&self, f: &Features) -> Option<(f32, Vec<f32>, f32)> {
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let (logit, score) = self.forward_into(f, s)?;
            Some((score, s.fam.clone(), logit))
        })
    }
}

fn input(n: &pb::NodeProto, i: usize) -> Result<&str, String> {
    n.input
        .get(i)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{} node {} lacks input {i}", n.op_type, n.name))
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}

fn attr_f(n: &pb::NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f)
}

fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>, String> {
    let t = t.cast_to::<f32>().map_err(|e| e.to_string())?;
    let v = t.to_plain_array_view::<f32>().map_err(|e| e.to_string())?;
    Ok(v.iter().copied().collect())
}

/// The graph being matched: producers by output name, initialisers, inputs, nodes used so far.
struct Graph<'a> {
    nodes: &'a [pb::NodeProto],
    producer: HashMap<&'a str, usize>,
    inits: HashMap<&'a str, &'a pb::TensorProto>,
    inputs: HashMap<&'a str, Slot>,
    used: Vec<bool>,
    f16c: bool,
}

impl<'a> Graph<'a> {
    fn new(graph: &'a pb::GraphProto, f16c: bool) -> Result<Graph<'a>, String> {
        let inits: HashMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let real_inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !inits.contains_key(n))
            .collect();
        if real_inputs.len() != SLOTS.len() {
            return Err(format!(
                "{} graph inputs, expected {}",
                real_inputs.len(),
                SLOTS.len()
            ));
        }
        let inputs = real_inputs.into_iter().zip(SLOTS).collect();
        let mut producer = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            if !(n.domain.is_empty() || n.domain == "ai.onnx") {
                return Err(format!("node {} in domain {}", n.name, n.domain));
            }
            for o in &n.output {
                if producer.insert(o.as_str(), i).is_some() {
                    return Err(format!("tensor {o} produced twice"));
                }
            }
        }
        Ok(Graph {
            nodes: &graph.node,
            producer,
            inits,
            inputs,
            used: vec![false; graph.node.len()],
            f16c,
        })
    }

    fn op(&self, name: &str) -> Option<&'a str> {
        self.producer
            .get(name)
            .map(|&i| self.nodes[i].op_type.as_str())
    }

    /// The node producing `name`, which must be a single-output `op`; marks it used.
    fn node(&mut self, name: &str, op: &str) -> Result<&'a pb::NodeProto, String> {
        let &i = self
            .producer
            .get(name)
            .ok_or_else(|| format!("tensor {name} is not computed by a node (expected {op})"))?;
        let n = &self.nodes[i];
        if n.op_type != op {
            return Err(format!(
                "tensor {name} comes from {}, expected {op}",
                n.op_type
            ));
        }
        if n.output.len() != 1 {
            return Err(format!(
                "{op} node {} has {} outputs",
                n.name,
                n.output.len()
            ));
        }
        if self.used[i] {
            return Err(format!("{op} node {} used twice", n.name));
        }
        self.used[i] = true;
        Ok(n)
    }

    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        let t = self
            .inits
            .get(name)
            .ok_or_else(|| format!("{name} is not an initialiser"))?;
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, t, None)
            .map_err(|e| format!("initialiser {name}: {e}"))
    }

    fn init_f32(&self, name: &str) -> Result<Vec<f32>, String> {
        to_f32_vec(&self.tensor(name)?)
    }

    fn slot(&self, name: &str) -> Option<Slot> {
        self.inputs.get(name).copied()
    }

    /// A `Gemm` node as a layer (`transA` = 0; `transB`, `alpha`, `beta` folded in).
    fn gemm(&mut self, n: &pb::NodeProto) -> Result<Layer, String> {
        if attr_i(n, "transA").unwrap_or(0) != 0 {
            return Err("Gemm with transA".into());
        }
        let trans_b = attr_i(n, "transB").unwrap_or(0) != 0;
        let alpha = attr_f(n, "alpha").unwrap_or(1.0);
        let beta = attr_f(n, "beta").unwrap_or(1.0);
        // The weight: an initialiser, or an f16 initialiser behind a Cast to float.
        let b_name = input(n, 1)?;
        let (bt, from_f16) = if self.op(b_name) == Some("Cast") {
            let c = self.node(b_name, "Cast")?;
            if attr_i(c, "to") != Some(1) {
                return Err("Gemm weight cast to a type other than float".into());
            }
            let t = self.tensor(input(c, 0)?)?;
            if t.datum_type() != f16::datum_type() {
                return Err(format!(
                    "Gemm weight cast from {:?}, expected f16",
                    t.datum_type()
                ));
            }
            (t, true)
        } else {
            (self.tensor(b_name)?, false)
        };
        if bt.shape().len() != 2 {
            return Err(format!("Gemm weight of shape {:?}", bt.shape()));
        }
        let (r, c) = (bt.shape()[0], bt.shape()[1]);
        let (n_in, n_out) = if trans_b { (c, r) } else { (r, c) };
        // Input-major copy of element (i, j) of the (possibly transposed) weight.
        fn input_major<T: Copy + Default>(
            raw: &[T],
            trans_b: bool,
            c: usize,
            n_in: usize,
            n_out: usize,
        ) -> Vec<T> {
            let mut w = vec![T::default(); n_in * n_out];
            for i in 0..n_in {
                for j in 0..n_out {
                    w[i * n_out + j] = if trans_b {
                        raw[j * c + i]
                    } else {
                        raw[i * c + j]
                    };
                }
            }
            w
        }
        let w = if from_f16 && alpha == 1.0 {
            let v = bt.to_plain_array_view::<f16>().map_err(|e| e.to_string())?;
            let raw: Vec<u16> = v.iter().map(|h| h.to_bits()).collect();
            LayerWeights::F16(input_major(&raw, trans_b, c, n_in, n_out))
        } else {
            let raw: Vec<f32> = to_f32_vec(&bt)?.iter().map(|v| alpha * v).collect();
            LayerWeights::F32(input_major(&raw, trans_b, c, n_in, n_out))
        };
        let b = match n.input.get(2).filter(|s| !s.is_empty()) {
            None => vec![0.0; n_out],
            Some(cname) => {
                let cv = self.init_f32(cname)?;
                if cv.len() == n_out {
                    cv.iter().map(|v| beta * v).collect()
                } else if cv.len() == 1 {
                    vec![beta * cv[0]; n_out]
                } else {
                    return Err(format!(
                        "Gemm bias of {} values for {n_out} outputs",
                        cv.len()
                    ));
                }
            }
        };
        Ok(Layer { n_in, n_out, w, b })
    }

    /// `Gather(table, input)` with an optional `Cast` to float after it.
    fn gathered(&mut self, name: &str) -> Result<(Table, Slot), String> {
        let cast = self.op(name) == Some("Cast");
        let g = if cast {
            let c = self.node(name, "Cast")?;
            if attr_i(c, "to") != Some(1) {
                return Err("Cast to a type other than float".into());
            }
            self.node(input(c, 0)?, "Gather")?
        } else {
            self.node(name, "Gather")?
        };
        if attr_i(g, "axis").unwrap_or(0) != 0 {
            return Err("Gather on an axis other than 0".into());
        }
        let t = self.tensor(input(g, 0)?)?;
        if !cast && t.datum_type() != f32::datum_type() {
            return Err(format!(
                "{:?} table gathered without a Cast",
                t.datum_type()
            ));
        }
        let slot = self
            .slot(input(g, 1)?)
            .ok_or("Gather indices are not a graph input")?;
        let table = Table::from_tensor(&t, self.f16c)?;
        Ok((table, slot))
    }

    /// `ReduceSum(gathered, axis 1, keepdims 0)`.
    fn bag(&mut self, name: &str) -> Result<(Table, Slot), String> {
        let r = self.node(name, "ReduceSum")?;
        let axes: Vec<i64> = match r.input.get(1).filter(|s| !s.is_empty()) {
            Some(a) => {
                let t = self.tensor(a)?;
                let t = t.cast_to::<i64>().map_err(|e| e.to_string())?;
                let v = t.to_plain_array_view::<i64>().map_err(|e| e.to_string())?;
                v.iter().copied().collect()
            }
            None => attr(r, "axes")
                .map(|a| a.ints.clone())
                .ok_or("ReduceSum without axes")?,
        };
        if axes != [1] && axes != [-2] {
            return Err(format!("ReduceSum over axes {axes:?}"));
        }
        if attr_i(r, "keepdims").unwrap_or(1) != 0 {
            return Err("ReduceSum keeping dims".into());
        }
        let (table, slot) = self.gathered(input(r, 0)?)?;
        if !matches!(slot, Slot::Ids | Slot::Words) {
            return Err(format!("bag over input {slot:?}"));
        }
        Ok((table, slot))
    }

    fn segment(&mut self, name: &str) -> Result<Segment, String> {
        if let Some(slot) = self.slot(name) {
            return if slot == Slot::Dense {
                Ok(Segment::Dense)
            } else {
                Err(format!("graph input {slot:?} concatenated as it is"))
            };
        }
        match self.op(name) {
            Some("Mul") => {
                let m = self.node(name, "Mul")?;
                let (a, b) = (input(m, 0)?, input(m, 1)?);
                let (scale, other) = match (self.slot(a), self.slot(b)) {
                    (Some(s), None) => (s, b),
                    (None, Some(s)) => (s, a),
                    _ => return Err("Mul that is not bag * per-row scale".into()),
                };
                if !matches!(scale, Slot::IdsInv | Slot::WordsInv) {
                    return Err(format!("bag scaled by input {scale:?}"));
                }
                let (table, list) = self.bag(other)?;
                Ok(Segment::Bag {
                    list,
                    table,
                    scale: Some(scale),
                })
            }
            Some("ReduceSum") => {
                let (table, list) = self.bag(name)?;
                Ok(Segment::Bag {
                    list,
                    table,
                    scale: None,
                })
            }
            Some("Cast") | Some("Gather") => {
                let (table, slot) = self.gathered(name)?;
                if slot != Slot::Tld {
                    return Err(format!("single-row lookup on input {slot:?}"));
                }
                Ok(Segment::Lookup { slot, table })
            }
            other => Err(format!("Concat input {name} from {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    //! A synthetic graph with other dimensions and the variants the matcher accepts (opset 13
    //! `ReduceSum` axes as an input, `transB`/`alpha`/`beta` on a `Gemm`, an f32 table without
    //! `Cast`, a sum bag without scale, a non-zero padding row, three hidden layers, another
    //! Concat order, no temperature) must run natively and agree with tract.

    use super::*;
    use crate::features::N_DENSE;
    use pb::attribute_proto::AttributeType;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f(&mut self) -> f32 {
            (self.next() % 20_001) as f32 / 10_000.0 - 1.0
        }
        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.f()).collect()
        }
    }

    fn f32_init(name: &str, dims: &[i64], v: Vec<f32>) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: v,
            ..Default::default()
        }
    }

    fn f16_init(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 10,
            raw_data: v
                .iter()
                .flat_map(|x| f16::from_f32(*x).to_bits().to_le_bytes())
                .collect(),
            ..Default::default()
        }
    }

    fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        }
    }

    fn float_attr(name: &str, f: f32) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Float as i32,
            f,
            ..Default::default()
        }
    }

    fn node(
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<pb::AttributeProto>,
    ) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    fn value_info(name: &str, elem_type: i32, dims: &[i64]) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                value: Some(D::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const W: Widths = Widths {
        ids: 9,
        words: 4,
        dense: N_DENSE,
    };
    const ROWS: (usize, usize, usize) = (50, 10, 6);
    const DIMS: (usize, usize, usize) = (16, 8, 5);
    // 70: two full tiles of the affine kernel and a tail.
    const HIDDEN: [usize; 3] = [70, 7, 5];
    const FAMILIES: usize = 4;

    fn synthetic() -> pb::ModelProto {
        let mut r = Rng(0x1234_5678_9abc_def1);
        let (ri, rw, rt) = ROWS;
        let (di, dw, dt) = DIMS;
        let ids_table = r.vec(ri * di); // row 0 deliberately not zero
        let in_dim = N_DENSE + dt + di + dw;
        let mut inits = vec![
            f16_init("E", &[ri as i64, di as i64], &ids_table),
            f32_init("Wd", &[rw as i64, dw as i64], r.vec(rw * dw)),
            f16_init("T", &[rt as i64, dt as i64], &r.vec(rt * dt)),
            pb::TensorProto {
                name: "axes".into(),
                dims: vec![1],
                data_type: 7,
                int64_data: vec![1],
                ..Default::default()
            },
        ];
        let mut nodes = vec![
            node("Gather", &["E", "ids"], "g16", vec![int_attr("axis", 0)]),
            node("Cast", &["g16"], "g", vec![int_attr("to", 1)]),
            node(
                "ReduceSum",
                &["g", "axes"],
                "gs",
                vec![int_attr("keepdims", 0)],
            ),
            node("Mul", &["inv_cnt", "gs"], "m", vec![]),
            node("Gather", &["Wd", "word_ids"], "wg", vec![]),
            node(
                "ReduceSum",
                &["wg", "axes"],
                "ws",
                vec![int_attr("keepdims", 0)],
            ),
            node("Gather", &["T", "tld"], "t16", vec![]),
            node("Cast", &["t16"], "t", vec![int_attr("to", 1)]),
            node(
                "Concat",
                &["dense", "t", "m", "ws"],
                "x",
                vec![int_attr("axis", 1)],
            ),
        ];
        let mut prev = ("x".to_string(), in_dim);
        for (i, &h) in HIDDEN.iter().enumerate() {
            let (w, b, a, o) = (
                format!("w{i}"),
                format!("b{i}"),
                format!("a{i}"),
                format!("h{i}"),
            );
            let mut attrs = vec![];
            if i == 1 {
                // transposed weight with alpha and beta
                inits.push(f32_init(&w, &[h as i64, prev.1 as i64], r.vec(h * prev.1)));
                inits.push(f32_init(&b, &[1, h as i64], r.vec(h)));
                attrs = vec![
                    int_attr("transB", 1),
                    float_attr("alpha", 0.5),
                    float_attr("beta", 2.0),
                ];
            } else if i == 0 {
                // f16 weight behind a Cast to float, as train.py exports the hidden layers
                let w16 = format!("{w}_16");
                inits.push(f16_init(
                    &w16,
                    &[prev.1 as i64, h as i64],
                    &r.vec(prev.1 * h),
                ));
                inits.push(f32_init(&b, &[h as i64], r.vec(h)));
                nodes.push(node("Cast", &[&w16], &w, vec![int_attr("to", 1)]));
            } else {
                inits.push(f32_init(&w, &[prev.1 as i64, h as i64], r.vec(prev.1 * h)));
                inits.push(f32_init(&b, &[h as i64], r.vec(h)));
            }
            nodes.push(node("Gemm", &[&prev.0, &w, &b], &a, attrs));
            nodes.push(node("Relu", &[&a], &o, vec![]));
            prev = (o, h);
        }
        let h = prev.1;
        inits.push(f32_init("wb", &[h as i64, 1], r.vec(h)));
        inits.push(f32_init("bb", &[1], r.vec(1)));
        inits.push(f32_init(
            "wf",
            &[h as i64, FAMILIES as i64],
            r.vec(h * FAMILIES),
        ));
        inits.push(f32_init("bf", &[FAMILIES as i64], r.vec(FAMILIES)));
        nodes.push(node("Gemm", &[&prev.0, "wb", "bb"], "logit", vec![]));
        nodes.push(node("Sigmoid", &["logit"], "score", vec![]));
        nodes.push(node("Gemm", &[&prev.0, "wf", "bf"], "zf", vec![]));
        nodes.push(node("Softmax", &["zf"], "fam", vec![int_attr("axis", -1)]));
        let graph = pb::GraphProto {
            name: "synthetic".into(),
            node: nodes,
            initializer: inits,
            input: vec![
                value_info("ids", 7, &[1, W.ids as i64]),
                value_info("inv_cnt", 1, &[1, 1]),
                value_info("word_ids", 7, &[1, W.words as i64]),
                value_info("inv_wcnt", 1, &[1, 1]),
                value_info("tld", 7, &[1]),
                value_info("dense", 1, &[1, N_DENSE as i64]),
            ],
            output: vec![
                value_info("score", 1, &[1, 1]),
                value_info("fam", 1, &[1, FAMILIES as i64]),
                value_info("logit", 1, &[1, 1]),
            ],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        }
    }

    fn tract_run(plan: &Arc<TypedRunnableModel>, f: &Features) -> (f32, Vec<f32>, f32) {
        let mut ids = vec![0i64; W.ids];
        let m = f.ids.len().min(W.ids);
        ids[..m].copy_from_slice(&f.ids[..m]);
        let mut wids = vec![0i64; W.words];
        let k = f.word_ids.len().min(W.words);
        wids[..k].copy_from_slice(&f.word_ids[..k]);
        let out = plan
            .run(tvec![
                Tensor::from_shape(&[1, W.ids], &ids).unwrap().into(),
                Tensor::from_shape(&[1, 1], &[1.0 / m.max(1) as f32])
                    .unwrap()
                    .into(),
                Tensor::from_shape(&[1, W.words], &wids).unwrap().into(),
                Tensor::from_shape(&[1, 1], &[1.0 / k.max(1) as f32])
                    .unwrap()
                    .into(),
                Tensor::from_shape(&[1], &[f.tld]).unwrap().into(),
                Tensor::from_shape(&[1, N_DENSE], &f.dense).unwrap().into(),
            ])
            .unwrap();
        let v = |i: usize| -> Vec<f32> {
            out[i]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        (v(0)[0], v(1), v(2)[0])
    }

    #[test]
    fn synthetic_graph_with_other_dimensions_matches_tract() {
        let proto = synthetic();
        let net = NativeNet::from_proto(&proto, W, FAMILIES).expect("recognised");
        assert_eq!(net.in_dim, N_DENSE + DIMS.0 + DIMS.1 + DIMS.2);
        assert_eq!(
            net.hidden.iter().map(|l| l.n_out).collect::<Vec<_>>(),
            HIDDEN
        );
        assert_eq!(net.family.n_out, FAMILIES);
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let mut r = Rng(77);
        for case in 0..500 {
            let n_ids = (r.next() % 14) as usize; // 0..13: empty, short, longer than W.ids
            let n_words = (r.next() % 6) as usize;
            let mut dense = [0f32; N_DENSE];
            dense.iter_mut().for_each(|d| *d = r.f());
            let f = Features {
                ids: (0..n_ids)
                    .map(|_| 1 + (r.next() % (ROWS.0 as u64 - 1)) as i64)
                    .collect(),
                word_ids: (0..n_words)
                    .map(|_| (r.next() % ROWS.1 as u64) as i64)
                    .collect(),
                tld: (r.next() % ROWS.2 as u64) as i64,
                dense,
            };
            let (s_t, fam_t, l_t) = tract_run(&plan, &f);
            let (s_n, fam_n, l_n) = net.run_full(&f).unwrap();
            assert!((l_n - l_t).abs() <= 1e-4, "case {case}: {l_n} vs {l_t}");
            assert!((s_n - s_t).abs() <= 1e-5, "case {case}: {s_n} vs {s_t}");
            for (a, b) in fam_n.iter().zip(&fam_t) {
                assert!((a - b).abs() <= 1e-5, "case {case}: {fam_n:?} vs {fam_t:?}");
            }
        }
        // Out-of-range ids are an inference failure, not a panic.
        let bad = Features {
            ids: vec![ROWS.0 as i64],
            word_ids: vec![],
            tld: 0,
            dense: [0.0; N_DENSE],
        };
        assert!(net.run(&bad).is_none());
    }

    /// NaN is kept and -0.0 dropped by both compaction paths, as `xi != 0.0` says.
    #[test]
    fn compaction_keeps_nan_and_drops_negative_zero() {
        let x = [
            -0.0,
            f32::NAN,
            1.0,
            0.0,
            -2.0,
            0.0,
            0.0,
            3.0,
            0.0,
            f32::NAN,
            -0.0,
        ];
        for fma in [false, true] {
            #[cfg(target_arch = "x86_64")]
            if fma && !std::arch::is_x86_feature_detected!("avx2") {
                continue;
            }
            let mut nz = NonZero::default();
            nz.compact(&x, Simd { fma, f16c: false });
            assert_eq!(nz.idx(), &[1, 2, 4, 7, 9], "fma {fma}");
        }
    }

    /// The register-held embedding sums give exactly the sums of the plain loop (same
    /// additions, same order) for the shipped widths and others, the chunked loop (widths not
    /// a multiple of 8, or over 64) does too, and both reject a bad id.
    #[test]
    fn embedding_sums_in_registers_match_plain_loop() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("f16c")
        {
            let mut r = Rng(0xadd);
            for dim in [48usize, 32, 24, 8, 64, 20, 72] {
                let rows = 50;
                let data: Vec<u16> = r
                    .vec(rows * dim)
                    .iter()
                    .map(|v| f16::from_f32(*v).to_bits())
                    .collect();
                let ids: Vec<i64> = (0..300).map(|_| (r.next() % rows as u64) as i64).collect();
                let start: Vec<f32> = r.vec(dim);
                let mut plain = start.clone();
                for &id in &ids {
                    for (k, a) in plain.iter_mut().enumerate() {
                        *a += f16::from_bits(data[id as usize * dim + k]).to_f32();
                    }
                }
                let mut fast = start.clone();
                // SAFETY: AVX and F16C detected; data is rows x dim.
                assert!(unsafe { add_rows_f16c(&data, rows, dim, &ids, &mut fast) });
                assert_eq!(
                    plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "dim {dim}"
                );
                // SAFETY: as above.
                assert!(!unsafe { add_rows_f16c(&data, rows, dim, &[3, rows as i64], &mut fast) });
                assert!(!unsafe { add_rows_f16c(&data, rows, dim, &[-1], &mut fast) });
            }
        }
    }

    /// The FMA kernel and the scalar fallback give bit-identical outputs (same fused
    /// multiply-add per term, same input order) for every tile shape: full 64-wide tiles, 8-wide
    /// tiles, and scalar tails, with zero inputs dropped.
    #[test]
    fn fma_kernel_matches_scalar_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            let mut r = Rng(0x5eed);
            for (n_in, n_out) in [
                (103, 256),
                (256, 128),
                (128, 48),
                (128, 1),
                (17, 70),
                (9, 7),
            ] {
                let w = r.vec(n_in * n_out);
                let b = r.vec(n_out);
                // about a third of the inputs zero, as after a ReLU
                let x: Vec<f32> = (0..n_in)
                    .map(|_| {
                        if r.next().is_multiple_of(3) {
                            0.0
                        } else {
                            r.f()
                        }
                    })
                    .collect();
                // the AVX2 compaction and the scalar one agree, and keep exactly the non-zeros
                let mut nz = NonZero::default();
                nz.compact(
                    &x,
                    Simd {
                        fma: true,
                        f16c: true,
                    },
                );
                let mut nz_scalar = NonZero::default();
                nz_scalar.compact(
                    &x,
                    Simd {
                        fma: false,
                        f16c: false,
                    },
                );
                assert_eq!(nz.idx(), nz_scalar.idx());
                assert_eq!(nz.val(), nz_scalar.val());
                let want: Vec<u32> = (0..n_in as u32).filter(|&i| x[i as usize] != 0.0).collect();
                assert_eq!(nz.idx(), &want[..]);
                let (idx, val) = (nz.idx(), nz.val());
                let mut scalar = vec![0f32; n_out];
                affine(&w, &b, idx, val, &mut scalar);
                let mut fast = vec![0f32; n_out];
                // SAFETY: features detected above; idx < n_in, w is n_in x n_out.
                unsafe { affine_fma(&w, &b, idx, val, &mut fast) };
                assert_eq!(
                    scalar.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{n_in}x{n_out}"
                );
                // f16 weights: the same against the scalar path on the widened values
                let w16: Vec<u16> = w.iter().map(|v| f16::from_f32(*v).to_bits()).collect();
                let mut scalar16 = vec![0f32; n_out];
                affine(&w16, &b, idx, val, &mut scalar16);
                let mut fast16 = vec![0f32; n_out];
                // SAFETY: as above (F16C is in the features checked at the top).
                assert!(std::arch::is_x86_feature_detected!("f16c"));
                unsafe { affine_fma(&w16, &b, idx, val, &mut fast16) };
                assert_eq!(
                    scalar16.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    fast16.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "f16 {n_in}x{n_out}"
                );
                // and the plain definition, to rounding
                for j in 0..n_out {
                    let want: f32 = b[j] + (0..n_in).map(|i| x[i] * w[i * n_out + j]).sum::<f32>();
                    assert!((want - scalar[j]).abs() <= 1e-4 * (1.0 + want.abs()), "{j}");
                }
            }
        }
    }

    #[test]
    fn unknown_structures_are_rejected() {
        // An extra node not on the path to the outputs.
        let mut p = synthetic();
        let g = p.graph.as_mut().unwrap();
        g.node.push(node("Relu", &["x"], "dangling", vec![]));
        let e = NativeNet::from_proto(&p, W, FAMILIES).unwrap_err();
        assert!(e.contains("not part of the known structure"), "{e}");
        // ReduceMean instead of ReduceSum.
        let mut p = synthetic();
        let g = p.graph.as_mut().unwrap();
        g.node[2].op_type = "ReduceMean".into();
        assert!(NativeNet::from_proto(&p, W, FAMILIES).is_err());
        // Tanh instead of Relu.
        let mut p = synthetic();
        let g = p.graph.as_mut().unwrap();
        let i = g.node.iter().position(|n| n.op_type == "Relu").unwrap();
        g.node[i].op_type = "Tanh".into();
        assert!(NativeNet::from_proto(&p, W, FAMILIES).is_err());
        // Wrong number of families.
        assert!(NativeNet::from_proto(&synthetic(), W, FAMILIES + 1).is_err());
    }
}
