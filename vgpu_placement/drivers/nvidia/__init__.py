"""NVIDIA: the vendor-specific VFIO driver (``vfio``), NVML (``nvml``), type
names and vendor parameters (``names``), the capacity rules (``mixed``,
``models``) and the privileged writes (``privileged``)."""
