//! The site's decisions, in one place: the document title, which instances a KOS references
//! (and as what kind of content item), the new series' number and description. The bundled rule
//! is a manifest of the whole study; the `of-interest` variant selects its key images.

use wasmpacs_sdk::archive::{Instance, Series};

/// A coded concept: (Code Value, Coding Scheme Designator, Code Meaning).
pub struct Concept {
    pub value: &'static str,
    pub scheme: &'static str,
    pub meaning: &'static str,
}

/// SOP Class UID of Key Object Selection Document Storage.
pub const KOS_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.59";

/// The Document Title (the root container's Concept Name).
#[cfg(not(feature = "of-interest"))]
pub const TITLE: Concept = Concept { value: "113030", scheme: "DCM", meaning: "Manifest" };
#[cfg(feature = "of-interest")]
pub const TITLE: Concept = Concept { value: "113000", scheme: "DCM", meaning: "Of Interest" };

/// Series Description of the new KO series.
#[cfg(not(feature = "of-interest"))]
pub const SERIES_DESCRIPTION: &str = "Key Object Selection: study manifest";
#[cfg(feature = "of-interest")]
pub const SERIES_DESCRIPTION: &str = "Key Object Selection: key images";

/// Whether only image instances are selected (key images), not every composite object.
const IMAGES_ONLY: bool = cfg!(feature = "of-interest");

/// The Value Type of the content item that references an instance (TID 2010).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Image,
    Waveform,
    Composite,
}

impl ItemKind {
    pub fn value_type(self) -> &'static str {
        match self {
            ItemKind::Image => "IMAGE",
            ItemKind::Waveform => "WAVEFORM",
            ItemKind::Composite => "COMPOSITE",
        }
    }

    pub fn of(sop_class_uid: &str) -> Self {
        if IMAGE_STORAGE.contains(&sop_class_uid) {
            ItemKind::Image
        } else if sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.9.") {
            ItemKind::Waveform
        } else {
            ItemKind::Composite
        }
    }
}

/// Whether the KOS references `instance`: never deprecated ones (nor those of a deprecated
/// series), never earlier Key Object Selection documents; images only in the key-images variant.
pub fn include(instance: &Instance) -> bool {
    !instance.deprecated
        && instance.sop_class_uid != KOS_SOP_CLASS
        && (!IMAGES_ONLY || ItemKind::of(&instance.sop_class_uid) == ItemKind::Image)
}

/// The new series comes after every series of the study.
pub fn series_number(series: &[Series]) -> i32 {
    series.iter().filter_map(|s| s.series_number).max().unwrap_or(0).saturating_add(1)
}

/// Image Storage SOP Classes (PS3.4 B.5): referenced by IMAGE content items.
const IMAGE_STORAGE: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.1",        // CR
    "1.2.840.10008.5.1.4.1.1.1.1",      // Digital X-Ray, for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",    // Digital X-Ray, for processing
    "1.2.840.10008.5.1.4.1.1.1.2",      // Digital Mammography, for presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",    // Digital Mammography, for processing
    "1.2.840.10008.5.1.4.1.1.1.3",      // Digital Intra-Oral X-Ray, for presentation
    "1.2.840.10008.5.1.4.1.1.1.3.1",    // Digital Intra-Oral X-Ray, for processing
    "1.2.840.10008.5.1.4.1.1.2",        // CT
    "1.2.840.10008.5.1.4.1.1.2.1",      // Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2",      // Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.3.1",      // Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.4",        // MR
    "1.2.840.10008.5.1.4.1.1.4.1",      // Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.3",      // Enhanced MR Color
    "1.2.840.10008.5.1.4.1.1.4.4",      // Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.1",      // Ultrasound
    "1.2.840.10008.5.1.4.1.1.6.2",      // Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.7",        // Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",      // Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",      // Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",      // Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",      // Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.12.1",     // X-Ray Angiographic
    "1.2.840.10008.5.1.4.1.1.12.1.1",   // Enhanced XA
    "1.2.840.10008.5.1.4.1.1.12.2",     // X-Ray Radiofluoroscopic
    "1.2.840.10008.5.1.4.1.1.12.2.1",   // Enhanced XRF
    "1.2.840.10008.5.1.4.1.1.13.1.1",   // X-Ray 3D Angiographic
    "1.2.840.10008.5.1.4.1.1.13.1.2",   // X-Ray 3D Craniofacial
    "1.2.840.10008.5.1.4.1.1.13.1.3",   // Breast Tomosynthesis
    "1.2.840.10008.5.1.4.1.1.13.1.4",   // Breast Projection X-Ray, for presentation
    "1.2.840.10008.5.1.4.1.1.13.1.5",   // Breast Projection X-Ray, for processing
    "1.2.840.10008.5.1.4.1.1.14.1",     // IVOCT, for presentation
    "1.2.840.10008.5.1.4.1.1.14.2",     // IVOCT, for processing
    "1.2.840.10008.5.1.4.1.1.20",       // Nuclear Medicine
    "1.2.840.10008.5.1.4.1.1.77.1.1",   // VL Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.1.1", // Video Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2",   // VL Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2.1", // Video Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.3",   // VL Slide-Coordinates Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4",   // VL Photographic
    "1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Photographic
    "1.2.840.10008.5.1.4.1.1.77.1.5.1", // Ophthalmic Photography 8 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.2", // Ophthalmic Photography 16 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.4", // Ophthalmic Tomography
    "1.2.840.10008.5.1.4.1.1.77.1.5.5", // Wide Field Ophthalmic Photography Stereographic
    "1.2.840.10008.5.1.4.1.1.77.1.5.6", // Wide Field Ophthalmic Photography 3D
    "1.2.840.10008.5.1.4.1.1.77.1.5.7", // Ophthalmic OCT En Face
    "1.2.840.10008.5.1.4.1.1.77.1.5.8", // Ophthalmic OCT B-scan Volume Analysis
    "1.2.840.10008.5.1.4.1.1.77.1.6",   // VL Whole Slide Microscopy
    "1.2.840.10008.5.1.4.1.1.77.1.7",   // Dermoscopic Photography
    "1.2.840.10008.5.1.4.1.1.128",      // PET
    "1.2.840.10008.5.1.4.1.1.128.1",    // Legacy Converted Enhanced PET
    "1.2.840.10008.5.1.4.1.1.130",      // Enhanced PET
    "1.2.840.10008.5.1.4.1.1.481.1",    // RT Image
];
