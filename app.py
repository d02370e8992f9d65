"""Attention Lens: see what SE, ECA and CBAM attention blocks do inside a ResNet.

The UI only: every number comes from `blocks/` (models), `viz/` (figures), `pretrained/` (weights).
"""
import streamlit as st

from blocks import attention_resnet

st.set_page_config(page_title="Attention Lens", layout="wide")
st.title("Attention Lens")
st.caption("Channel and spatial attention (SE, ECA, CBAM) inside a ResNet.")

depth = st.sidebar.selectbox("ResNet depth", [18, 34, 50, 101, 152], index=2)
attention = st.sidebar.selectbox("Attention", ["se", "eca", "cbam"], index=2)


@st.cache_resource
def parameter_table(depth: int, attention: str) -> list[dict]:
    plain = sum(p.numel() for p in attention_resnet(depth).parameters())
    model = attention_resnet(depth, attention)
    total = sum(p.numel() for p in model.parameters())
    return [{"model": f"ResNet-{depth}", "parameters": plain},
            {"model": f"{attention.upper()}-ResNet-{depth}", "parameters": total},
            {"model": "added by attention", "parameters": total - plain}]


st.table(parameter_table(depth, attention))
