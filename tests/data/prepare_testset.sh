#!/usr/bin/env bash
# Build OUT_DIR: pydicom's offline test files covering the required transfer syntaxes,
# with UNIQUE SOP Instance UIDs (dup families get a new UID via dcmodify -gin, which keeps the TS and
# the encapsulated pixel data untouched), plus CT_small transcoded by dcmtk into the other lossless TSs.
set -euo pipefail
OUT=${1:?usage: prepare_testset.sh OUT_DIR}
T=$(python3 -c "import pydicom,os;print(os.path.join(os.path.dirname(pydicom.__file__),'data','test_files'))")
rm -rf "$OUT"; mkdir -p "$OUT"
cp_orig(){ cp "$T/$1" "$OUT/$2"; }
# deterministic new UID (1.2.826.0.1.3680043.8.498.<hash of output name>); dcmodify also updates (0002,0003)
detuid(){ python3 -c "from pydicom.uid import generate_uid; print(generate_uid(entropy_srcs=['wasmpacs-testset', '$1']))"; }
newuid(){ dcmodify -q -nb -m "(0008,0018)=$(detuid "$1")" "$OUT/$1"; }
cp_newuid(){ cp "$T/$1" "$OUT/$2"; newuid "$2"; }
# --- originals with unique SOP Instance UIDs (within this set) ---
cp_orig CT_small.dcm                   ele_ct16_CT_small.dcm
cp_orig examples_overlay.dcm           ele_mr16_examples_overlay.dcm
cp_orig examples_rgb_color.dcm         ele_rgb_us_examples_rgb_color.dcm
cp_orig examples_palette.dcm           ele_palette_us_examples_palette.dcm
cp_orig MR_small_implicit.dcm          ile_mr16_MR_small_implicit.dcm
cp_orig rtdose.dcm                     ile_rtdose32_15frames_rtdose.dcm
cp_orig image_dfl.dcm                  deflate_ot8_image_dfl.dcm
cp_orig SC_rgb_jpeg_dcmtk.dcm          jpegbase_ybr_SC_rgb_jpeg_dcmtk.dcm
cp_orig SC_jpeg_no_color_transform.dcm jpegbase_rgb_SC_jpeg_no_color_transform.dcm
cp_orig examples_ybr_color.dcm         jpegbase_ybr422_30frames_examples_ybr_color.dcm
cp_orig JPEG-lossy.dcm                 jpegext_nm16_JPEG-lossy.dcm
cp_orig SC_rgb_jpeg_gdcm.dcm           jpegll70_rgb_SC_rgb_jpeg_gdcm.dcm
cp_orig J2K_pixelrep_mismatch.dcm      j2k90_ct16_J2K_pixelrep_mismatch.dcm
cp_orig examples_jpeg2k.dcm            j2k90_ybrrct_us_examples_jpeg2k.dcm
cp_orig 693_J2KI.dcm                   j2k91_ct16_693_J2KI.dcm
cp_orig SC_rgb_gdcm_KY.dcm             j2k91_rgb_SC_rgb_gdcm_KY.dcm
cp_orig JPEGLSNearLossless_16.dcm      jls81_mono16_JPEGLSNearLossless_16.dcm
cp_orig SC_rgb_jls_lossy_line.dcm      jls81_rgb_SC_rgb_jls_lossy_line.dcm
cp_newuid MR_small_bigendian.dcm       ebe_mr16_MR_small_bigendian.dcm   # retired TS 1.2.840.10008.1.2.2 (optional)
cp_orig test-SR.dcm                    ele_sr_test-SR.dcm                # no pixel data
# --- members of duplicate-UID families: new SOP Instance UID, same study/series ---
cp_newuid MR_small_RLE.dcm               rle_mr16_MR_small_RLE.dcm
cp_newuid MR_small_jp2klossless.dcm      j2k90_mr16_MR_small_jp2klossless.dcm
cp_newuid MR_small_jpeg_ls_lossless.dcm  jls80_mr16_MR_small_jpeg_ls_lossless.dcm
cp_newuid SC_rgb_rle.dcm                 rle_rgb_SC_rgb_rle.dcm
cp_newuid SC_rgb_rle_2frame.dcm          rle_rgb_2frames_SC_rgb_rle_2frame.dcm
cp_newuid SC_rgb_rle_16bit_2frame.dcm    rle_rgb16_2frames_SC_rgb_rle_16bit_2frame.dcm
# --- CT_small (16-bit CT) transcoded by dcmtk, each with a new SOP Instance UID (same study/series) ---
dcmconv  -q +ti "$T/CT_small.dcm" "$OUT/ile_ct16_CT_small_dcmconv.dcm"
dcmconv  -q +td "$T/CT_small.dcm" "$OUT/deflate_ct16_CT_small_dcmconv.dcm"
dcmcjpeg -q +e1 "$T/CT_small.dcm" "$OUT/jpegll70_ct16_CT_small_dcmcjpeg.dcm"
dcmcjpls -q +el "$T/CT_small.dcm" "$OUT/jls80_ct16_CT_small_dcmcjpls.dcm"
dcmcrle  -q     "$T/CT_small.dcm" "$OUT/rle_ct16_CT_small_dcmcrle.dcm"
dcmcjpeg -q +eb "$T/image_dfl.dcm" "$OUT/jpegbase_ot8_image_dfl_dcmcjpeg.dcm"
for f in ile_ct16_CT_small_dcmconv deflate_ct16_CT_small_dcmconv jpegll70_ct16_CT_small_dcmcjpeg jls80_ct16_CT_small_dcmcjpls rle_ct16_CT_small_dcmcrle jpegbase_ot8_image_dfl_dcmcjpeg; do
  newuid "$f.dcm"
done
# the two JPEG-LS near-lossless files have NO Study/Series Instance UID, PatientID or Modality in the original:
# add them (deterministic) so a PACS can index them. (Originals are useful as negative tests.)
for f in jls81_mono16_JPEGLSNearLossless_16.dcm jls81_rgb_SC_rgb_jls_lossy_line.dcm; do
  dcmodify -q -nb -i "(0020,000D)=$(detuid "$f-study")" -i "(0020,000E)=$(detuid "$f-series")" \
     -i "(0010,0020)=JLS81" -i "(0010,0010)=Test^JLS" -i "(0008,0060)=OT" "$OUT/$f"
done
ls -1 "$OUT" | wc -l
