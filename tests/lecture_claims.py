"""Gradient lines claimed in the seed lectures, transcribed as plain text (test input only).

Each line is copied as the lecture states it, mistakes included; only the LaTeX is turned into
plain text (``\\frac{\\partial L}{\\partial O_{11}}`` -> ``dL/dO_11``, ``\\cdot`` and juxtaposition
-> ``*``, ``a_{13}`` -> ``a_13``). Which lines are right is decided by the tests, never here.
"""

from __future__ import annotations

# -- seeds/000_e7f9db8d5e202048.txt: X 3×3 ⋆ F 2×2, stride 1, textbook 1-based subscripts ---------

LECTURE_000_SPEC = {"input": (1, 1, 3, 3), "weight": (1, 1, 2, 2)}

#: "Filter updates": the four ∂L/∂F lines (written with * in the lecture).
LECTURE_000_DF = [
    "dL/dF_11 = dL/dO_11*X_11 + dL/dO_12*X_12 + dL/dO_21*X_21 + dL/dO_22*X_22",
    "dL/dF_12 = dL/dO_11*X_12 + dL/dO_12*X_13 + dL/dO_21*X_22 + dL/dO_22*X_23",
    "dL/dF_21 = dL/dO_11*X_21 + dL/dO_12*X_22 + dL/dO_21*X_31 + dL/dO_22*X_32",
    "dL/dF_22 = dL/dO_11*X_22 + dL/dO_12*X_23 + dL/dO_21*X_32 + dL/dO_22*X_33",
]

#: "New sensitivity": the seven ∂L/∂X lines (written with \cdot in the lecture).
LECTURE_000_DX = [
    "dL/dX_11 = dL/dO_11*F_11",
    "dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_21",
    "dL/dX_21 = dL/dO_11*F_21 + dL/dO_21*F_11",
    "dL/dX_22 = dL/dO_11*F_22 + dL/dO_21*F_12 + dL/dO_22*F_21",
    "dL/dX_31 = dL/dO_21*F_11 + dL/dO_22*F_12",
    "dL/dX_32 = dL/dO_21*F_12 + dL/dO_22*F_21",
    "dL/dX_33 = dL/dO_22*F_22",
]

LECTURE_000 = LECTURE_000_DF + LECTURE_000_DX

# -- seeds/004_4f4f274075c2c478.txt: a 5×5 ⋆ w 3×3, stride 2 -> z 2×2, flat row-major names ------
#    a_1..a_25, w_1..w_9, z_1..z_4; products written by juxtaposition ("a_1 dL/dz_1").

LECTURE_004_SPEC = {"input": (1, 1, 5, 5), "weight": (1, 1, 3, 3), "stride": 2}

#: The block of nine ∂L/∂w sums as it appears first (and again later) in the lecture.
LECTURE_004_BLOCK_A = [
    "dL/dw_1 = a_1*dL/dz_1 + a_3*dL/dz_2 + a_11*dL/dz_3 + a_13*dL/dz_4",
    "dL/dw_2 = a_2*dL/dz_1 + a_4*dL/dz_2 + a_12*dL/dz_3 + a_14*dL/dz_4",
    "dL/dw_3 = a_3*dL/dz_1 + a_5*dL/dz_2 + a_13*dL/dz_3 + a_15*dL/dz_4",
    "dL/dw_4 = a_6*dL/dz_1 + a_8*dL/dz_2 + a_16*dL/dz_3 + a_18*dL/dz_4",
    "dL/dw_5 = a_7*dL/dz_1 + a_9*dL/dz_2 + a_17*dL/dz_3 + a_19*dL/dz_4",
    "dL/dw_6 = a_8*dL/dz_1 + a_10*dL/dz_2 + a_18*dL/dz_3 + a_20*dL/dz_4",
    "dL/dw_7 = a_11*dL/dz_1 + a_13*dL/dz_2 + a_21*dL/dz_3 + a_23*dL/dz_4",
    "dL/dw_8 = a_12*dL/dz_1 + a_14*dL/dz_2 + a_22*dL/dz_3 + a_24*dL/dz_4",
    "dL/dw_9 = a_13*dL/dz_1 + a_15*dL/dz_2 + a_23*dL/dz_3 + a_25*dL/dz_4",
]

#: The other block of nine ∂L/∂w sums (the multi-line "aligned" slide).
LECTURE_004_BLOCK_B = [
    "dL/dw_1 = a_1*dL/dz_1 + a_3*dL/dz_2 + a_1*dL/dz_3 + a_13*dL/dz_4",
    "dL/dw_2 = a_2*dL/dz_1 + a_4*dL/dz_2 + a_12*dL/dz_3 + a_14*dL/dz_4",
    "dL/dw_3 = a_3*dL/dz_1 + a_5*dL/dz_2 + a_13*dL/dz_3 + a_15*dL/dz_4",
    "dL/dw_4 = a_6*dL/dz_1 + a_8*dL/dz_2 + a_16*dL/dz_3 + a_18*dL/dz_4",
    "dL/dw_5 = a_7*dL/dz_1 + a_9*dL/dz_2 + a_17*dL/dz_3 + a_19*dL/dz_4",
    "dL/dw_6 = a_8*dL/dz_1 + a_10*dL/dz_2 + a_18*dL/dz_3 + a_20*dL/dz_4",
    "dL/dw_7 = a_11*dL/dz_1 + a_3*dL/dz_2 + a_21*dL/dz_3 + a_23*dL/dz_4",
    "dL/dw_8 = a_12*dL/dz_1 + a_4*dL/dz_2 + a_22*dL/dz_3 + a_24*dL/dz_4",
    "dL/dw_9 = a_13*dL/dz_1 + a_5*dL/dz_2 + a_23*dL/dz_3 + a_25*dL/dz_4",
]

#: One line of block B exactly as the slide's LaTeX has it, to exercise the LaTeX reader.
LECTURE_004_LATEX_LINE = (
    r"\frac{\partial L}{\partial w_7} &= a_{11} \frac{\partial L}{\partial z_1} + "
    r"a_3 \frac{\partial L}{\partial z_2} + a_{21} \frac{\partial L}{\partial z_3} + "
    r"a_{23} \frac{\partial L}{\partial z_4} \\"
)
