//! The subset of FHIRPath used by the R4 search parameter expressions of hosted types.
