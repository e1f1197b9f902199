//! Dependency-graph checks: a task may depend only on known tasks, never on itself,
//! and never in a cycle.

use std::collections::{BTreeMap, BTreeSet};

use crate::task::TaskId;

/// Why a set of dependencies is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepError {
    /// A task would depend on itself.
    #[error("task {0} cannot depend on itself")]
    SelfDependency(TaskId),
    /// A dependency names no task.
    #[error("task {0} does not exist")]
    UnknownTask(TaskId),
    /// The new edges would close a cycle; `path` runs from the task back to itself.
    #[error("this dependency would create a cycle: {}", path.iter().map(|t| format!("#{t}")).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The cycle, starting and ending at the same task.
        path: Vec<TaskId>,
    },
}

/// A dependency graph: each task and the tasks it waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepGraph {
    edges: BTreeMap<TaskId, BTreeSet<TaskId>>,
}

impl DepGraph {
    /// Builds the graph from `(task, its dependencies)` pairs. Every task must appear.
    pub fn new(tasks: impl IntoIterator<Item = (TaskId, Vec<TaskId>)>) -> DepGraph {
        DepGraph {
            edges: tasks
                .into_iter()
                .map(|(t, d)| (t, d.into_iter().collect()))
                .collect(),
        }
    }

    /// The tasks that depend on `task`, sorted.
    pub fn dependents(&self, task: TaskId) -> Vec<TaskId> {
        self.edges
            .iter()
            .filter(|(_, deps)| deps.contains(&task))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Checks that `task` may depend on exactly `deps`, and if so records it.
    /// `task` itself may be new to the graph.
    pub fn set_deps(&mut self, task: TaskId, deps: &[TaskId]) -> Result<(), DepError> {
        for d in deps {
            if *d == task {
                return Err(DepError::SelfDependency(task));
            }
            if !self.edges.contains_key(d) {
                return Err(DepError::UnknownTask(*d));
            }
        }
        let old = self
            .edges
            .insert(task, deps.iter().copied().collect())
            .unwrap_or_default();
        if let Some(path) = self.path(task) {
            self.edges.insert(task, old);
            return Err(DepError::Cycle { path });
        }
        Ok(())
    }

    /// A cycle through `start`, if any, as `start -> ... -> start`.
    fn path(&self, start: TaskId) -> Option<Vec<TaskId>> {
        // Iterative DFS with an explicit stack of (node, children not yet visited), so a
        // long chain cannot overflow the call stack.
        let mut stack: Vec<(TaskId, Vec<TaskId>)> = vec![(start, self.children(start))];
        let mut seen = BTreeSet::new();
        while let Some((_, children)) = stack.last_mut() {
            match children.pop() {
                Some(c) if c == start => {
                    let mut p: Vec<TaskId> = stack.iter().map(|(n, _)| *n).collect();
                    p.push(start);
                    return Some(p);
                }
                Some(c) => {
                    if seen.insert(c) {
                        let cc = self.children(c);
                        stack.push((c, cc));
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
        None
    }

    /// Some cycle in the whole graph, as `a -> ... -> a`, found in one pass over every
    /// task and edge (an iterative depth-first search with three colours), so checking a
    /// whole board costs time linear in its size.
    pub fn find_cycle(&self) -> Option<Vec<TaskId>> {
        // 1: on the current path, 2: done.
        let mut colour: BTreeMap<TaskId, u8> = BTreeMap::new();
        for &root in self.edges.keys() {
            if colour.contains_key(&root) {
                continue;
            }
            let mut stack: Vec<(TaskId, Vec<TaskId>)> = vec![(root, self.children(root))];
            colour.insert(root, 1);
            while let Some((node, children)) = stack.last_mut() {
                let node = *node;
                match children.pop() {
                    Some(c) => match colour.get(&c) {
                        Some(1) => {
                            let from = stack.iter().position(|(n, _)| *n == c).unwrap_or(0);
                            let mut p: Vec<TaskId> =
                                stack[from..].iter().map(|(n, _)| *n).collect();
                            p.push(c);
                            return Some(p);
                        }
                        Some(_) => {}
                        None => {
                            colour.insert(c, 1);
                            let cc = self.children(c);
                            stack.push((c, cc));
                        }
                    },
                    None => {
                        colour.insert(node, 2);
                        stack.pop();
                    }
                }
            }
        }
        None
    }

    fn children(&self, t: TaskId) -> Vec<TaskId> {
        let mut v: Vec<TaskId> = self
            .edges
            .get(&t)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        v.reverse();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(i64, &[i64])]) -> DepGraph {
        DepGraph::new(
            edges
                .iter()
                .map(|(t, d)| (TaskId(*t), d.iter().map(|x| TaskId(*x)).collect())),
        )
    }

    #[test]
    fn rejects_cycles_and_keeps_graph_unchanged() {
        let mut graph = g(&[(1, &[]), (2, &[1]), (3, &[2])]);
        let before = graph.clone();
        let err = graph.set_deps(TaskId(1), &[TaskId(3)]).unwrap_err();
        assert_eq!(
            err,
            DepError::Cycle {
                path: vec![TaskId(1), TaskId(3), TaskId(2), TaskId(1)]
            }
        );
        assert_eq!(
            err.to_string(),
            "this dependency would create a cycle: #1 -> #3 -> #2 -> #1"
        );
        assert_eq!(graph, before);
        assert_eq!(
            graph.set_deps(TaskId(1), &[TaskId(1)]),
            Err(DepError::SelfDependency(TaskId(1)))
        );
        assert_eq!(
            graph.set_deps(TaskId(4), &[TaskId(9)]),
            Err(DepError::UnknownTask(TaskId(9)))
        );
        // A diamond is fine.
        graph.set_deps(TaskId(4), &[TaskId(2), TaskId(3)]).unwrap();
        assert_eq!(graph.dependents(TaskId(2)), vec![TaskId(3), TaskId(4)]);
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let n = 100_000;
        let mut graph = DepGraph::new(
            (1..=n).map(|i| (TaskId(i), if i > 1 { vec![TaskId(i - 1)] } else { vec![] })),
        );
        assert!(matches!(
            graph.set_deps(TaskId(1), &[TaskId(n)]),
            Err(DepError::Cycle { .. })
        ));
    }
}
