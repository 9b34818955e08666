"""The teacher's solutions to the exercise notebook (examples/11_exercises.ipynb).

The notebook imports `solutions.exercises` only when the environment variable MINICNN_SOLUTIONS=1 is set, and then
runs these functions in place of the students' skeletons. Leave this folder out of the copy handed to students.
"""
