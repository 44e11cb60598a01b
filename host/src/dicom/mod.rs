//! DICOM: reading instance headers, and the DIMSE server that modalities talk to (C-ECHO,
//! C-STORE into the archive).

pub mod dimse;
pub mod header;
pub mod scp;
pub mod worklist;
