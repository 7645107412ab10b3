//! PHP worker processes and the static worker pool.
