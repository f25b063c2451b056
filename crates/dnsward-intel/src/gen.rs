//! Stream generator.
