#!/usr/bin/env python3
"""STOW -> QIDO -> WADO round trip with dicomweb-client (tested with dicomweb-client 0.61.2, pydicom 3.0.2).

usage: dicomweb_example.py BASE_URL API_KEY CALLING_AET FILE.dcm [FILE2.dcm ...]
  e.g. dicomweb_example.py http://127.0.0.1:8080/o3-dpacs-wado mykey MODALITY_A target/testset/ele_ct16_CT_small.dcm
Env alternative: BASE_URL, API_KEY, CALLING_AET, DICOM_FILE. Exits non-zero on any mismatch.
CALLING_AET must be a [[node]] of the API key's tenant. Requests sent (BASE = BASE_URL), at the
paths O3-DPACS publishes:
  STOW  POST BASE/stowRsListener/{CALLING_AET}/studies
             Content-Type: multipart/related; type="application/dicom"; boundary="0f3cf5c0-..."
  QIDO  GET  BASE/rs/studies?PatientID=..&limit=..&offset=..&fuzzymatching=false&includefield=..
             Accept: application/dicom+json, application/json
  WADO  GET  BASE/rs/studies/{st}/series/{se}/instances/{sop}
             Accept: multipart/related; type="application/dicom"; transfer-syntax=*
"""
import os, sys
import requests
import pydicom
from dicomweb_client.api import DICOMwebClient


def main(argv):
    base = argv[1] if len(argv) > 1 else os.environ["BASE_URL"]
    key = argv[2] if len(argv) > 2 else os.environ["API_KEY"]
    aet = argv[3] if len(argv) > 3 else os.environ["CALLING_AET"]
    files = argv[4:] or [os.environ["DICOM_FILE"]]

    session = requests.Session()
    session.headers.update({"Authorization": key})          # custom auth header on every request
    client = DICOMwebClient(                                 # O3-DPACS paths: STOW per calling AET, QIDO/WADO under rs/
        url=base,
        session=session,
        qido_url_prefix="rs",
        wado_url_prefix="rs",
        stow_url_prefix=f"stowRsListener/{aet}",
    )
    # equivalently: DICOMwebClient(url=base, headers={"Authorization": key})

    datasets = [pydicom.dcmread(f) for f in files]
    # ---- STOW-RS: POST {base}/studies (one multipart request with all instances) ----
    resp = client.store_instances(datasets=datasets)          # returns pydicom Dataset (parsed dicom+json)
    stored = [item.ReferencedSOPInstanceUID for item in resp.get("ReferencedSOPSequence", [])]
    failed = resp.get("FailedSOPSequence", [])
    print("STOW stored:", stored, "failed:", len(failed))
    assert not failed, failed

    ok = True
    for ds in datasets:
        st, se, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        # ---- QIDO-RS ----
        studies = client.search_for_studies(
            search_filters={"StudyInstanceUID": st},              # any attribute keyword or tag -> query param
            fuzzymatching=False, limit=10, offset=0,
            fields=["StudyDescription", "PatientID"],            # -> includefield=...
        )
        print("QIDO studies:", [s["0020000D"]["Value"][0] for s in studies])
        if ds.get("PatientID"):
            by_pid = client.search_for_studies(search_filters={"PatientID": ds.PatientID})
            print("QIDO studies by PatientID", ds.PatientID, "->", len(by_pid))
        series = client.search_for_series(study_instance_uid=st)
        instances = client.search_for_instances(study_instance_uid=st, series_instance_uid=se)
        print("QIDO series:", len(series), "instances:", len(instances))
        ok &= any(i["00080018"]["Value"][0] == sop for i in instances)

        # ---- WADO-RS ----
        # transfer-syntax=* asks the server for the stored TS unchanged (no transcoding).
        inst = client.retrieve_instance(st, se, sop, media_types=(("application/dicom", "*"),))
        same = (inst.SOPInstanceUID == sop
                and inst.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
                and inst.get("PixelData") == ds.get("PixelData"))
        print("WADO instance", sop, "TS", inst.file_meta.TransferSyntaxUID, "identical pixel data:", same)
        ok &= same
        ser = client.retrieve_series(st, se, media_types=(("application/dicom", "*"),))
        stu = client.retrieve_study(st, media_types=(("application/dicom", "*"),))
        meta = client.retrieve_study_metadata(st)                 # list of DICOM JSON dicts (no bulk data)
        print("WADO series:", len(ser), "study:", len(stu), "metadata:", len(meta))
        ok &= sop in {d.SOPInstanceUID for d in ser} and sop in {d.SOPInstanceUID for d in stu}
        ok &= any(m.get("00080018", {}).get("Value", [None])[0] == sop for m in meta)
    print("ROUND TRIP", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
