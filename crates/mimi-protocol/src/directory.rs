//! The directory document (-06 §4.2).
