#!/usr/bin/env bash
# What WeasyPrint (receipt PDFs at /manage) needs from the system: Pango and
# fonts that cover Latin and Cyrillic (DejaVu). Installed with apt-get when
# missing and we may (root); otherwise said, since a PDF download would fail.
set -u
have_pango() { ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0'; }
have_fonts() { fc-list 2>/dev/null | grep -qi 'DejaVu Sans'; }
have_subset() { ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset.so.0'; }
if have_pango && have_fonts && have_subset; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Pango and the DejaVu fonts for receipt PDFs (apt-get)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core fontconfig) >/dev/null 2>&1 || true
fi
if ! have_pango || ! have_fonts; then
  echo "warning: receipt PDFs need Pango and the DejaVu fonts:" \
       "apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core" >&2
fi
exit 0
