//! In-memory merges: no checkout, no index, no ref moved.

use orch_core::config::MergeStyle;
use orch_core::ports::{ConflictPath, MergeOutcome};
use orch_core::run::CommitId;

use crate::{Git, GitError, oid};

/// The conflict's kind, from gix's resolution (for a content conflict) or its failure.
fn kind(c: &gix::merge::tree::Conflict) -> String {
    let name = match &c.resolution {
        Ok(r) => format!("{r:?}"),
        Err(f) => format!("{f:?}"),
    };
    let variant = name.split([' ', '{', '(']).next().unwrap_or("").to_owned();
    match variant.as_str() {
        "OursModifiedTheirsModifiedThenBlobContentMerge" => "content".into(),
        "OursAddedTheirsAddedTypeMismatch" => "add/add (type)".into(),
        "OursModifiedTheirsDeleted" | "OursDeletedTheirsModified" => "modify/delete".into(),
        _ => variant,
    }
}

impl Git {
    /// Merges `head` into `onto` in memory. Clean: writes the merge commit (parents
    /// `onto` and `head`) or, for `squash`, a single-parent commit, and returns it.
    /// Conflicted: returns the unresolved paths and kinds, writing no commit. No ref
    /// moves either way.
    pub fn merge(
        &self,
        onto: &CommitId,
        head: &CommitId,
        style: MergeStyle,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        let repo = self.repo();
        let (ours, theirs) = (oid(onto)?, oid(head)?);
        let options: gix::merge::commit::Options = repo
            .tree_merge_options()
            .map_err(|e| GitError::gix("configuring the merge", e))?
            .into();
        let labels = gix::merge::blob::builtin_driver::text::Labels {
            ancestor: Some("base".into()),
            current: Some("integration".into()),
            other: Some("attempt".into()),
        };
        let mut out = repo
            .merge_commits(ours, theirs, labels, options)
            .map_err(|e| GitError::gix("merging", e))?;
        let how = gix::merge::tree::TreatAsUnresolved::git();
        let mut conflicts: Vec<ConflictPath> = out
            .tree_merge
            .conflicts
            .iter()
            .filter(|c| c.is_unresolved(how))
            .flat_map(|c| {
                let k = kind(c);
                let mut paths = vec![
                    c.ours.location().to_string(),
                    c.theirs.location().to_string(),
                ];
                paths.dedup();
                paths.into_iter().map(move |path| ConflictPath {
                    path,
                    kind: k.clone(),
                })
            })
            .collect();
        if !conflicts.is_empty() {
            conflicts.sort();
            conflicts.dedup();
            return Ok(MergeOutcome::Conflicted { conflicts });
        }
        let tree = out
            .tree_merge
            .tree
            .write()
            .map_err(|e| GitError::gix("writing the merged tree", e))?;
        let parents = match style {
            MergeStyle::Merge => vec![ours, theirs],
            MergeStyle::Squash => vec![ours],
        };
        let sig = gix::actor::Signature {
            name: self.identity().name.as_str().into(),
            email: self.identity().email.as_str().into(),
            time: gix::date::Time::now_local_or_utc(),
        };
        let mut buf = gix::date::parse::TimeBuf::default();
        let commit = repo
            .new_commit_as(
                sig.to_ref(&mut buf),
                sig.to_ref(&mut gix::date::parse::TimeBuf::default()),
                message,
                tree.detach(),
                parents,
            )
            .map_err(|e| GitError::gix("writing the merge commit", e))?;
        Ok(MergeOutcome::Clean {
            commit: CommitId(commit.id.to_string()),
        })
    }

    /// Whether `branch_tip`'s changes are already in `integration_tip`: merging it
    /// there changes nothing. Works for merges and squash merges alike.
    pub(crate) fn contains(
        &self,
        integration_tip: &CommitId,
        branch_tip: &CommitId,
    ) -> Result<bool, GitError> {
        let repo = self.repo();
        let (i, b) = (oid(integration_tip)?, oid(branch_tip)?);
        if let Ok(Some(base)) = repo.merge_base(i, b)
            && base.detach() == b
        {
            return Ok(true);
        }
        let options: gix::merge::commit::Options = repo
            .tree_merge_options()
            .map_err(|e| GitError::gix("configuring the merge", e))?
            .into();
        let mut out = repo
            .merge_commits(i, b, Default::default(), options)
            .map_err(|e| GitError::gix("merging", e))?;
        if out
            .tree_merge
            .has_unresolved_conflicts(gix::merge::tree::TreatAsUnresolved::git())
        {
            return Ok(false);
        }
        let merged = out
            .tree_merge
            .tree
            .write()
            .map_err(|e| GitError::gix("writing the merged tree", e))?
            .detach();
        let current = repo
            .find_commit(i)
            .and_then(|c| c.tree_id())
            .map_err(|e| GitError::gix("reading a commit", e))?
            .detach();
        Ok(merged == current)
    }
}
