//! Rust core of seqrec_fast, exposed to Python as `seqrec_fast._loader`: id remapping and CSR
//! construction, splits, the binary cache, batch streams built on background threads, negative
//! sampling and the synthetic data generator. All heavy work runs without the GIL.

mod augment;
mod buf;
mod build;
mod cache;
mod digest;
mod eval;
mod packing;
mod pool;
mod prefetch;
mod remap;
mod rng;
mod sampler;
mod sequences;
mod split;
mod synth;
mod train;

use numpy::ndarray::{ArrayView1, ArrayViewD, IxDyn};
use numpy::{Element, IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;

use build::{BuildOptions, SplitKind, TimeColumn};
use prefetch::{Batch, BatchMaker, Prefetcher};
use remap::{IdColumn, Offsets, StrChunk};
use sampler::ItemSampler;
use sequences::{EvalSplit, IdMap, Sequences};

create_exception!(
    _loader,
    CacheError,
    PyValueError,
    "A dataset cache is missing, corrupted or stale."
);
create_exception!(
    _loader,
    RowError,
    PyValueError,
    "Bad input data; args are (message, column, row) with row counted from 0 over data rows, or None."
);

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

/// Version of the Rust crate, so that `seqrec-fast doctor` can tell a stale build.
#[pyfunction]
fn crate_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Time-ordered per-user sequences (CSR) with their split; arrays are exposed as read-only
/// numpy views of Rust-owned or memory-mapped memory.
#[pyclass(name = "Sequences", module = "seqrec_fast._loader", frozen)]
struct PySequences {
    inner: Arc<Sequences>,
}

fn readonly_view<'py, T: Element + Copy>(
    owner: &Bound<'py, PySequences>,
    data: &[T],
) -> Bound<'py, PyArray1<T>> {
    let view = ArrayView1::from(data);
    // SAFETY: the data belongs to `owner` (frozen, immutable), which the array keeps alive.
    let array = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    array.readwrite().make_nonwriteable();
    array
}

fn id_map_to_py<'py>(owner: &Bound<'py, PySequences>, ids: &IdMap) -> PyResult<Py<PyAny>> {
    let py = owner.py();
    Ok(match ids {
        IdMap::Index => py.None(),
        IdMap::Int(values) => readonly_view(owner, values).into_any().unbind(),
        IdMap::Str { offsets, data } => PyTuple::new(
            py,
            [
                readonly_view(owner, offsets).into_any(),
                readonly_view(owner, data).into_any(),
            ],
        )?
        .into_any()
        .unbind(),
    })
}

#[pymethods]
impl PySequences {
    #[getter]
    fn n_users(&self) -> usize {
        self.inner.n_users()
    }
    #[getter]
    fn n_items(&self) -> usize {
        self.inner.n_items
    }
    #[getter]
    fn n_interactions(&self) -> usize {
        self.inner.items.len()
    }
    #[getter]
    fn meta(&self) -> &str {
        &self.inner.meta
    }
    /// Whether the arrays are views of a memory-mapped cache file.
    #[getter]
    fn is_mapped(&self) -> bool {
        self.inner.items.is_mapped()
    }
    #[getter]
    fn offsets<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i64>> {
        readonly_view(slf, &slf.get().inner.offsets)
    }
    #[getter]
    fn items<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i32>> {
        readonly_view(slf, &slf.get().inner.items)
    }
    #[getter]
    fn times<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i64>> {
        readonly_view(slf, &slf.get().inner.times)
    }
    #[getter]
    fn train_end<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i64>> {
        readonly_view(slf, &slf.get().inner.split.train_end)
    }
    #[getter]
    fn valid_pos<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i64>> {
        readonly_view(slf, &slf.get().inner.split.valid_pos)
    }
    #[getter]
    fn test_pos<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i64>> {
        readonly_view(slf, &slf.get().inner.split.test_pos)
    }
    /// Original user ids: None (synthetic), an int64 array, or (offsets, utf8 bytes).
    #[getter]
    fn user_ids(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        id_map_to_py(slf, &slf.get().inner.user_ids)
    }
    /// Original item ids (entry i is item id i + 1), in the same forms as `user_ids`.
    #[getter]
    fn item_ids(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        id_map_to_py(slf, &slf.get().inner.item_ids)
    }

    /// Training-split count of every item id; index 0 (padding) is 0.
    fn item_counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.train_item_counts())
            .into_pyarray(py)
    }

    /// (training interactions, validation targets, test targets).
    fn split_sizes(&self, py: Python<'_>) -> (usize, usize, usize) {
        let s = Arc::clone(&self.inner);
        py.detach(move || {
            (
                s.train_interactions(),
                s.count_targets(EvalSplit::Valid),
                s.count_targets(EvalSplit::Test),
            )
        })
    }

    /// The same data with other metadata (shares the arrays).
    fn with_meta(&self, meta: String) -> PySequences {
        PySequences {
            inner: Arc::new(Sequences {
                meta,
                ..(*self.inner).clone()
            }),
        }
    }

    /// The same data under another split: "leave_one_out" or "temporal" (global time cutoffs
    /// at the given fractions of all interactions).
    #[pyo3(signature = (kind, valid_fraction=0.1, test_fraction=0.1))]
    fn resplit(
        &self,
        py: Python<'_>,
        kind: &str,
        valid_fraction: f64,
        test_fraction: f64,
    ) -> PyResult<PySequences> {
        let split_kind = parse_split(kind, valid_fraction, test_fraction)?;
        let inner = Arc::clone(&self.inner);
        let split = py.detach(move || match split_kind {
            SplitKind::LeaveOneOut => split::leave_one_out(&inner.offsets),
            SplitKind::Temporal {
                valid_fraction,
                test_fraction,
            } if !inner.times.is_empty() => {
                let (t_valid, t_test) =
                    split::temporal_cutoffs(&inner.times, valid_fraction, test_fraction);
                split::temporal(&inner.offsets, &inner.times, t_valid, t_test)
            }
            SplitKind::Temporal { .. } => split::leave_one_out(&inner.offsets),
        });
        Ok(PySequences {
            inner: Arc::new(Sequences {
                split,
                ..(*self.inner).clone()
            }),
        })
    }

    /// Writes the binary cache atomically (temporary file, fsync, rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        py.detach(move || cache::write(&inner, &path))
            .map_err(CacheError::new_err)
    }
}

fn parse_split(kind: &str, valid_fraction: f64, test_fraction: f64) -> PyResult<SplitKind> {
    match kind {
        "leave_one_out" => Ok(SplitKind::LeaveOneOut),
        "temporal" => {
            let ok = valid_fraction >= 0.0
                && test_fraction > 0.0
                && valid_fraction + test_fraction < 1.0;
            if !ok {
                return Err(value_error(format!(
                    "temporal split needs 0 <= valid_fraction, 0 < test_fraction and a sum below 1, got {valid_fraction} and {test_fraction}"
                )));
            }
            Ok(SplitKind::Temporal {
                valid_fraction,
                test_fraction,
            })
        }
        other => Err(value_error(format!(
            "split must be 'leave_one_out' or 'temporal', got {other:?}"
        ))),
    }
}

/// Memory-maps a cache file written by `Sequences.save`.
#[pyfunction]
#[pyo3(signature = (path, verify=true))]
fn load_cache(py: Python<'_>, path: PathBuf, verify: bool) -> PyResult<PySequences> {
    let seq = py
        .detach(move || cache::read(&path, verify))
        .map_err(CacheError::new_err)?;
    Ok(PySequences {
        inner: Arc::new(seq),
    })
}

/// XXH3-128 of a file's bytes as 32 hex digits (memory-mapped, without the GIL); raises
/// OSError naming the file if it cannot be read.
#[pyfunction]
fn file_digest(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| digest::file_digest(&path))
        .map_err(|e| PyOSError::new_err(format!("{}: cannot read: {e}", path.display())))
}

/// Generates a synthetic dataset from a preset; `overrides` may set any preset field.
#[pyfunction]
#[pyo3(signature = (preset, seed=0, n_users=None, n_items=None, n_interactions=None, min_len=None, max_len=None))]
#[allow(clippy::too_many_arguments)]
fn synthesize(
    py: Python<'_>,
    preset: &str,
    seed: u64,
    n_users: Option<usize>,
    n_items: Option<usize>,
    n_interactions: Option<usize>,
    min_len: Option<usize>,
    max_len: Option<usize>,
) -> PyResult<PySequences> {
    let mut cfg = synth::SynthConfig::preset(preset, seed).map_err(value_error)?;
    cfg.n_users = n_users.unwrap_or(cfg.n_users);
    cfg.n_items = n_items.unwrap_or(cfg.n_items);
    cfg.n_interactions = n_interactions.unwrap_or(cfg.n_interactions);
    cfg.min_len = min_len.unwrap_or(cfg.min_len);
    cfg.max_len = max_len.unwrap_or(cfg.max_len.min(cfg.n_items));
    let seq = py
        .detach(move || synth::synthesize(&cfg))
        .map_err(value_error)?;
    Ok(PySequences {
        inner: Arc::new(seq),
    })
}

/// Column chunks borrowed from numpy views of Arrow buffers, held while Rust reads them.
enum HeldIds<'py> {
    Int(PyReadonlyArray1<'py, i64>),
    Str32(PyReadonlyArray1<'py, i32>, PyReadonlyArray1<'py, u8>),
    Str64(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, u8>),
}

fn hold_ids<'py>(chunks: &Bound<'py, PyList>) -> PyResult<Vec<HeldIds<'py>>> {
    chunks
        .iter()
        .map(|chunk| {
            if let Ok(tuple) = chunk.cast::<PyTuple>() {
                let (offsets, data) = (tuple.get_item(0)?, tuple.get_item(1)?);
                let data: PyReadonlyArray1<u8> = data.extract()?;
                if let Ok(o) = offsets.extract::<PyReadonlyArray1<i32>>() {
                    Ok(HeldIds::Str32(o, data))
                } else {
                    Ok(HeldIds::Str64(offsets.extract()?, data))
                }
            } else {
                Ok(HeldIds::Int(chunk.extract()?))
            }
        })
        .collect()
}

fn contiguous<'a, T: Element>(array: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|_| value_error("column chunks must be contiguous arrays".into()))
}

fn id_column<'a>(held: &'a [HeldIds<'_>], name: &str) -> PyResult<IdColumn<'a>> {
    if held.iter().all(|h| matches!(h, HeldIds::Int(_))) {
        let chunks = held.iter().map(|h| match h {
            HeldIds::Int(a) => contiguous(a),
            _ => unreachable!(),
        });
        return Ok(IdColumn::Int(chunks.collect::<PyResult<_>>()?));
    }
    let chunks = held.iter().map(|h| match h {
        HeldIds::Str32(o, d) => Ok(StrChunk {
            offsets: Offsets::I32(contiguous(o)?),
            data: contiguous(d)?,
        }),
        HeldIds::Str64(o, d) => Ok(StrChunk {
            offsets: Offsets::I64(contiguous(o)?),
            data: contiguous(d)?,
        }),
        HeldIds::Int(_) => Err(value_error(format!(
            "the {name} column mixes integer and string chunks"
        ))),
    });
    Ok(IdColumn::Str(chunks.collect::<PyResult<_>>()?))
}

enum HeldTimes<'py> {
    Int(PyReadonlyArray1<'py, i64>),
    Float(PyReadonlyArray1<'py, f64>),
}

/// Builds sequences from interaction columns handed over chunk by chunk, so that the caller can
/// free each part of its table as soon as it is added.
#[pyclass(name = "InteractionBuilder", module = "seqrec_fast._loader")]
struct PyInteractionBuilder {
    inner: Option<build::Builder>,
}

#[pymethods]
impl PyInteractionBuilder {
    #[new]
    fn new() -> Self {
        PyInteractionBuilder {
            inner: Some(build::Builder::default()),
        }
    }

    /// Rows added so far.
    #[getter]
    fn rows(&self) -> usize {
        self.inner.as_ref().map_or(0, |b| b.rows())
    }

    /// Adds rows: `users`/`items` are lists of chunks (int64 arrays, or (offsets int32/int64,
    /// utf8 uint8) tuples for string ids), `times` a list of int64 or float64 arrays, or None for
    /// file order. Raises RowError(message, column, row) with row counted over all added rows.
    #[pyo3(signature = (users, items, times, n_rows))]
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        users: &Bound<'py, PyList>,
        items: &Bound<'py, PyList>,
        times: Option<&Bound<'py, PyList>>,
        n_rows: usize,
    ) -> PyResult<()> {
        let builder = self
            .inner
            .as_mut()
            .ok_or_else(|| value_error("the builder was already finished".into()))?;
        let held_users = hold_ids(users)?;
        let held_items = hold_ids(items)?;
        let held_times: Option<Vec<HeldTimes>> = times
            .map(|list| {
                list.iter()
                    .map(|c| match c.extract::<PyReadonlyArray1<i64>>() {
                        Ok(a) => Ok(HeldTimes::Int(a)),
                        Err(_) => Ok(HeldTimes::Float(c.extract()?)),
                    })
                    .collect::<PyResult<Vec<_>>>()
            })
            .transpose()?;
        let user_column = id_column(&held_users, "user")?;
        let item_column = id_column(&held_items, "item")?;
        let time_column = time_column(&held_times, n_rows)?;
        py.detach(|| builder.add(&user_column, &item_column, &time_column))
            .map_err(|e| RowError::new_err((e.message, e.column, e.row)))
    }

    /// Remaps, sorts, filters and splits; returns (Sequences, report dict). The builder is spent.
    #[pyo3(signature = (min_user=1, min_item=1, drop_duplicates=true, split="leave_one_out", valid_fraction=0.1, test_fraction=0.1))]
    #[allow(clippy::too_many_arguments)]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        min_user: usize,
        min_item: usize,
        drop_duplicates: bool,
        split: &str,
        valid_fraction: f64,
        test_fraction: f64,
    ) -> PyResult<(PySequences, Bound<'py, PyDict>)> {
        let options = BuildOptions {
            min_user,
            min_item,
            drop_duplicates,
            split: parse_split(split, valid_fraction, test_fraction)?,
        };
        let builder = self
            .inner
            .take()
            .ok_or_else(|| value_error("the builder was already finished".into()))?;
        let (seq, report) = py
            .detach(move || builder.finish(&options))
            .map_err(|e| RowError::new_err((e.message, e.column, e.row)))?;
        let dict = PyDict::new(py);
        dict.set_item("rows", report.rows)?;
        dict.set_item("duplicates_dropped", report.duplicates_dropped)?;
        dict.set_item("filtered_rows", report.filtered_rows)?;
        dict.set_item("users_dropped", report.users_dropped)?;
        dict.set_item("items_dropped", report.items_dropped)?;
        dict.set_item("filter_rounds", report.filter_rounds)?;
        Ok((
            PySequences {
                inner: Arc::new(seq),
            },
            dict,
        ))
    }
}

fn time_column<'a>(
    held: &'a Option<Vec<HeldTimes<'_>>>,
    n_rows: usize,
) -> PyResult<TimeColumn<'a>> {
    Ok(match held {
        None => TimeColumn::RowOrder(n_rows),
        Some(chunks) if chunks.iter().all(|c| matches!(c, HeldTimes::Int(_))) => TimeColumn::Int(
            chunks
                .iter()
                .map(|c| {
                    if let HeldTimes::Int(a) = c {
                        contiguous(a)
                    } else {
                        unreachable!()
                    }
                })
                .collect::<PyResult<_>>()?,
        ),
        Some(chunks) => TimeColumn::Float(
            chunks
                .iter()
                .map(|c| match c {
                    HeldTimes::Float(a) => contiguous(a),
                    HeldTimes::Int(_) => Err(value_error(
                        "the time column mixes integer and float chunks".into(),
                    )),
                })
                .collect::<PyResult<_>>()?,
        ),
    })
}

/// Owns a batch buffer while numpy arrays view it; returns it to the pool when freed.
#[pyclass(module = "seqrec_fast._loader", frozen)]
struct BatchBuffer {
    data: Vec<i64>,
}

impl Drop for BatchBuffer {
    fn drop(&mut self) {
        pool::give_back(std::mem::take(&mut self.data));
    }
}

fn batch_to_dict<'py>(py: Python<'py>, batch: Batch) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for array in batch {
        let owner = Bound::new(py, BatchBuffer { data: array.data })?;
        let data = &owner.get().data;
        let view = ArrayViewD::from_shape(IxDyn(&array.shape), data)
            .map_err(|e| value_error(e.to_string()))?;
        // SAFETY: the buffer lives in `owner` (frozen: never mutated or moved) as long as the
        // array, which holds a reference to it.
        let numpy_array = unsafe { PyArrayDyn::borrow_from_array(&view, owner.clone().into_any()) };
        dict.set_item(array.name, numpy_array)?;
    }
    Ok(dict)
}

/// Iterates over the batches of one epoch (or one evaluation pass) as dicts of numpy arrays.
#[pyclass(name = "BatchIter", module = "seqrec_fast._loader")]
struct PyBatchIter {
    prefetcher: Prefetcher,
}

#[pymethods]
impl PyBatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __len__(&self) -> usize {
        self.prefetcher.remaining()
    }

    fn __next__<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(index) = slf.prefetcher.next_index() else {
            return Ok(None);
        };
        let result = match slf.prefetcher.take_receiver() {
            Some((slot, rx)) => {
                let (rx, result) = py.detach(move || {
                    let result = Prefetcher::wait(&rx);
                    (rx, result)
                });
                slf.prefetcher.put_back(slot, rx);
                result
            }
            None => {
                let maker: Arc<dyn BatchMaker> = Arc::clone(slf.prefetcher.maker());
                py.detach(move || maker.make(index))
            }
        };
        slf.prefetcher.advance();
        let batch = result.map_err(value_error)?;
        Ok(Some(batch_to_dict(py, batch)?))
    }
}

/// The negative sampler; popularity counts are computed without the GIL.
fn make_sampler(py: Python<'_>, seqs: &Arc<Sequences>, name: &str) -> PyResult<Arc<ItemSampler>> {
    let seqs = Arc::clone(seqs);
    let name = name.to_owned();
    py.detach(move || ItemSampler::parse(&name, seqs.n_items, || seqs.train_item_counts()))
        .map(Arc::new)
        .map_err(value_error)
}

#[pyclass(name = "TrainStream", module = "seqrec_fast._loader", frozen)]
struct PyTrainStream {
    inner: Arc<train::TrainStream>,
}

#[pymethods]
impl PyTrainStream {
    #[new]
    #[pyo3(signature = (sequences, batch_size, max_len, objective="causal", window="last", stride=None,
                        n_negatives=0, negative_sampler="uniform", mask_prob=0.2, mask_last_ratio=0.0,
                        mask_span="targets", seed=0,
                        rank=0, world_size=1, shuffle=true, augmentations=None, augment_fraction=0.25,
                        n_views=2, held_out_users=0.0, held_out=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        sequences: &PySequences,
        batch_size: usize,
        max_len: usize,
        objective: &str,
        window: &str,
        stride: Option<usize>,
        n_negatives: usize,
        negative_sampler: &str,
        mask_prob: f64,
        mask_last_ratio: f64,
        mask_span: &str,
        seed: u64,
        rank: usize,
        world_size: usize,
        shuffle: bool,
        augmentations: Option<Vec<String>>,
        augment_fraction: f64,
        n_views: usize,
        held_out_users: f64,
        held_out: bool,
    ) -> PyResult<Self> {
        // held_out_users is the share of users set aside (0: none); held_out picks which side
        // the stream reads. TrainConfig::check rejects a share outside (0, 1).
        let users = match (held_out_users == 0.0, held_out) {
            (true, false) => train::UserSubset::All,
            (true, true) => {
                return Err(value_error(
                    "held_out=True reads the held-out users, which needs held_out_users > 0".into(),
                ))
            }
            (false, false) => train::UserSubset::Kept {
                held_out: held_out_users,
            },
            (false, true) => train::UserSubset::HeldOut {
                held_out: held_out_users,
            },
        };
        let objective = match objective {
            "causal" => train::Objective::Causal,
            "cloze" => train::Objective::Cloze {
                mask_prob,
                mask_last_ratio,
                span: match mask_span {
                    "targets" => train::MaskSpan::Targets,
                    "window" => train::MaskSpan::Window,
                    other => {
                        return Err(value_error(format!(
                            "mask_span must be 'targets' or 'window', got {other:?}"
                        )))
                    }
                },
            },
            other => {
                return Err(value_error(format!(
                    "mode must be 'causal' or 'cloze', got {other:?}"
                )))
            }
        };
        let window = match (window, stride) {
            ("last", None) => train::Window::Last,
            ("sliding", None) => train::Window::Stride(max_len),
            ("stride", Some(stride)) => train::Window::Stride(stride),
            ("stride", None) => return Err(value_error("window 'stride' needs a stride".into())),
            ("last" | "sliding", Some(_)) => {
                return Err(value_error(format!(
                    "stride applies only to window 'stride', not {window:?}"
                )))
            }
            (other, _) => {
                return Err(value_error(format!(
                    "window must be 'last', 'sliding' or 'stride', got {other:?}"
                )))
            }
        };
        // n_views counts the views that augmentations make; without them another count would
        // silently do nothing.
        if augmentations.is_none() && n_views != 2 {
            return Err(value_error(format!(
                "n_views applies only with augmentations, got n_views={n_views} without them"
            )));
        }
        let views = augmentations
            .map(|names| {
                let augmentations = names
                    .iter()
                    .map(|n| augment::Augmentation::parse(n))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, String>(train::Views {
                    augmentations,
                    fraction: augment_fraction,
                    count: n_views,
                })
            })
            .transpose()
            .map_err(value_error)?;
        let config = train::TrainConfig {
            batch_size,
            max_len,
            objective,
            window,
            n_negatives,
            seed,
            rank,
            world_size,
            shuffle,
            views,
            users,
        };
        let seqs = Arc::clone(&sequences.inner);
        let sampler = if n_negatives > 0 {
            make_sampler(py, &seqs, negative_sampler)?
        } else {
            Arc::new(ItemSampler::Uniform {
                n_items: seqs.n_items,
            })
        };
        let stream = py
            .detach(move || train::TrainStream::new(seqs, config, sampler))
            .map_err(value_error)?;
        Ok(PyTrainStream {
            inner: Arc::new(stream),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.n_batches()
    }

    /// Samples (sequences or windows) of this rank per epoch.
    #[getter]
    fn n_samples(&self) -> usize {
        self.inner.n_samples()
    }

    /// The batches of `epoch`, from `start_batch` on, built by `num_threads` background threads
    /// (0: in the calling thread).
    #[pyo3(signature = (epoch, start_batch=0, num_threads=1))]
    fn epoch(&self, epoch: u64, start_batch: usize, num_threads: usize) -> PyBatchIter {
        let maker: Arc<dyn BatchMaker> = Arc::new(self.inner.epoch(epoch));
        PyBatchIter {
            prefetcher: Prefetcher::new(maker, start_batch, num_threads),
        }
    }
}

#[pyclass(name = "EvalStream", module = "seqrec_fast._loader", frozen)]
struct PyEvalStream {
    inner: Arc<eval::EvalStream>,
}

#[pymethods]
impl PyEvalStream {
    #[new]
    #[pyo3(signature = (sequences, split="valid", batch_size=512, max_len=50, n_negatives=0, negative_sampler="uniform", seed=0, rank=0, world_size=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        sequences: &PySequences,
        split: &str,
        batch_size: usize,
        max_len: usize,
        n_negatives: usize,
        negative_sampler: &str,
        seed: u64,
        rank: usize,
        world_size: usize,
    ) -> PyResult<Self> {
        let split = EvalSplit::parse(split).map_err(value_error)?;
        let seqs = Arc::clone(&sequences.inner);
        let sampler = make_sampler(py, &seqs, negative_sampler)?;
        let stream = eval::EvalStream::new(
            seqs,
            split,
            batch_size,
            max_len,
            n_negatives,
            sampler,
            seed,
            rank,
            world_size,
        )
        .map_err(value_error)?;
        Ok(PyEvalStream {
            inner: Arc::new(stream),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.n_batches()
    }

    /// Users evaluated on this rank.
    #[getter]
    fn n_users(&self) -> usize {
        self.inner.n_users()
    }

    #[pyo3(signature = (num_threads=1))]
    fn batches(&self, num_threads: usize) -> PyBatchIter {
        let maker: Arc<dyn BatchMaker> = Arc::clone(&self.inner) as Arc<dyn BatchMaker>;
        PyBatchIter {
            prefetcher: Prefetcher::new(maker, 0, num_threads),
        }
    }
}

#[pymodule]
fn _loader(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crate_version, m)?)?;
    m.add_function(wrap_pyfunction!(load_cache, m)?)?;
    m.add_function(wrap_pyfunction!(file_digest, m)?)?;
    m.add_function(wrap_pyfunction!(synthesize, m)?)?;
    m.add_class::<PySequences>()?;
    m.add_class::<PyInteractionBuilder>()?;
    m.add_class::<PyTrainStream>()?;
    m.add_class::<PyEvalStream>()?;
    m.add_class::<PyBatchIter>()?;
    m.add("CacheError", m.py().get_type::<CacheError>())?;
    m.add("RowError", m.py().get_type::<RowError>())?;
    m.add("CACHE_FORMAT_VERSION", cache::FORMAT_VERSION)?;
    Ok(())
}
