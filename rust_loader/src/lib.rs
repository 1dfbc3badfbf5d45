//! Rust core of seqrec_fast, exposed to Python as `seqrec_fast._loader`.

use pyo3::prelude::*;

/// Version of the Rust crate, so that `seqrec-fast doctor` can tell a stale build.
#[pyfunction]
fn crate_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _loader(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crate_version, m)?)?;
    Ok(())
}
