@echo off
python -m streamlit run webui.py
