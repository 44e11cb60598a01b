#!/usr/bin/env python3
"""Generate one synthetic DICOM whole slide (VL Whole Slide Microscopy Image Storage, tiled full,
RGB, Explicit VR Little Endian): a pyramid of levels, one instance per level, plus a LABEL image
whose total pixel matrix is declared larger than the baseline (a server must not take it for the
baseline: only VOLUME images are levels).

usage: gen_wsi.py OUT_DIR --barcode ABC-001 [--levels 3] [--tile 32] [--width 512] [--height 384]
Writes level-<n>.dcm (level 0 is the baseline, the highest resolution) and label.dcm; prints the
baseline's SOP Instance UID. Requires pydicom>=3, numpy.
"""
import argparse, os
import numpy as np
from pydicom.uid import generate_uid

from part10 import new_instance

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


def instance(a, study, series, frame_of_reference, number, image_type, width, height, tile):
    sop = generate_uid()
    ds = new_instance(WSI, sop)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
    ds.PatientName, ds.PatientID = "SLIDE^PATIENT", "WSI-" + a.barcode
    ds.StudyID, ds.AccessionNumber, ds.StudyDate, ds.StudyTime = "1", "", "20260101", "120000"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "SM", 1, number
    ds.ImageType = image_type
    ds.ContainerIdentifier = a.barcode
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.Rows, ds.Columns = tile, tile
    across, down = -(-width // tile), -(-height // tile)
    ds.NumberOfFrames = across * down
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    rng = np.random.default_rng(number)
    ds.PixelData = rng.integers(0, 256, size=(ds.NumberOfFrames, tile, tile, 3), dtype=np.uint8).tobytes()
    path = os.path.join(a.out, f"{'label' if 'LABEL' in image_type else f'level-{number - 1}'}.dcm")
    ds.save_as(path, enforce_file_format=True)
    return sop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--barcode", required=True)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--tile", type=int, default=32)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    baseline = None
    for level in range(a.levels):
        width, height = a.width >> level, a.height >> level
        image_type = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"] if level == 0 else ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        sop = instance(a, study, series, frame_of_reference, level + 1, image_type, width, height, a.tile)
        baseline = baseline or sop
    instance(a, study, series, frame_of_reference, a.levels + 1, ["ORIGINAL", "PRIMARY", "LABEL", "NONE"], a.width * 2, a.height * 2, a.tile)
    print(baseline)


if __name__ == "__main__":
    main()
