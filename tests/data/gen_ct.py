#!/usr/bin/env python3
"""Generate N synthetic CT Image Storage Part-10 files (default 512x512, 16-bit, Explicit VR Little Endian)
with unique UIDs, grouped into patients / studies / series.

usage: gen_ct.py OUT_DIR [-n 1000] [--studies 10] [--series-per-study 2] [--patients 5]
                 [--rows 512] [--cols 512] [--seed 1] [--prefix BENCH]
 - instances are spread evenly over studies*series_per_study series (slices 1..k per series)
 - studies are assigned round-robin to patients
 - --seed makes all UIDs deterministic (pydicom prefix + hash of seed/role/index); without it UIDs are random
 - pixel data: one precomputed phantom + a per-instance stamp (cheap; every file differs)
Speed: ~1000 files of 512 KiB in a few seconds (disk bound). Requires pydicom>=3, numpy.
"""
import argparse, datetime, os, sys
import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, generate_uid

from part10 import new_instance


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--studies", type=int, default=10)
    ap.add_argument("--series-per-study", type=int, default=2)
    ap.add_argument("--patients", type=int, default=5)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--cols", type=int, default=512)
    ap.add_argument("--seed", type=str, default=None, help="deterministic UIDs")
    ap.add_argument("--prefix", default="BENCH", help="PatientID/Name/Accession prefix")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    def uid(*parts):
        if a.seed is None:
            return generate_uid()                        # 1.2.826.0.1.3680043.8.498.<random>
        return generate_uid(entropy_srcs=[a.seed, *map(str, parts)])  # 1.2.826.0.1.3680043.8.498.<sha512-derived int>

    nser = a.studies * a.series_per_study
    # phantom: circle of "soft tissue" (~40 HU) in air (-1000 HU); stored = HU + 1024 (12 bits stored)
    yy, xx = np.mgrid[0:a.rows, 0:a.cols]
    r = np.hypot(yy - a.rows / 2, xx - a.cols / 2)
    base = np.where(r < min(a.rows, a.cols) * 0.4, 1064, 24).astype(np.uint16)
    base[(r > min(a.rows, a.cols) * 0.35) & (r < min(a.rows, a.cols) * 0.4)] = 2024  # "bone" ring
    today = datetime.date.today().strftime("%Y%m%d")

    study_uids = [uid("study", s) for s in range(a.studies)]
    series_uids = [uid("series", s) for s in range(nser)]
    for_uids = [uid("for", s) for s in range(a.studies)]
    per_series = [0] * nser
    for i in range(a.n):
        se = i % nser                     # round-robin: every series gets ~n/nser instances
        st = se // a.series_per_study
        pt = st % a.patients
        per_series[se] += 1
        inst_no = per_series[se]
        sop = uid("sop", i)

        ds = new_instance(CTImageStorage, sop)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = "120000"; ds.SeriesTime = f"12{se % 60:02d}00"; ds.ContentTime = "120000"
        ds.AccessionNumber = f"{a.prefix}A{st:06d}"
        ds.Modality = "CT"
        ds.Manufacturer = "wasmpacs-synthetic"
        ds.ReferringPhysicianName = "Ref^Doctor"
        ds.StudyDescription = f"{a.prefix} synthetic study {st}"
        ds.SeriesDescription = f"{a.prefix} series {se % a.series_per_study + 1}"
        ds.PatientName = f"{a.prefix}^Patient{pt:04d}"
        ds.PatientID = f"{a.prefix}P{pt:06d}"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.KVP = "120"
        ds.SliceThickness = "1.0"
        ds.StudyInstanceUID = study_uids[st]
        ds.SeriesInstanceUID = series_uids[se]
        ds.StudyID = str(st + 1)
        ds.SeriesNumber = se % a.series_per_study + 1
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = inst_no
        ds.ImagePositionPatient = [-0.5 * a.cols * 0.7, -0.5 * a.rows * 0.7, float(inst_no)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = for_uids[st]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = float(inst_no)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = a.rows; ds.Columns = a.cols
        ds.PixelSpacing = [0.7, 0.7]
        ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11; ds.PixelRepresentation = 0
        ds.WindowCenter = "40"; ds.WindowWidth = "400"
        ds.RescaleIntercept = "-1024"; ds.RescaleSlope = "1"; ds.RescaleType = "HU"
        px = base.copy()
        px[8:24, 8:8 + 16 * 8] = (np.arange(16 * 8) // 16 == (i % 8)) * 4000 % 4096  # per-instance stamp
        px[0, 0] = i % 4096
        ds.PixelData = px.tobytes()
        path = os.path.join(a.out, f"ct_{i:06d}.dcm")
        ds.save_as(path, enforce_file_format=True)
    print(f"wrote {a.n} files to {a.out}: {a.patients} patients, {a.studies} studies, {nser} series")


if __name__ == "__main__":
    main()
