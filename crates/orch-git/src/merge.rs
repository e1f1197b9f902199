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

/// The conflict markers' names for the three sides.
fn labels() -> gix::merge::blob::builtin_driver::text::Labels<'static> {
    gix::merge::blob::builtin_driver::text::Labels {
        ancestor: Some("base".into()),
        current: Some("integration".into()),
        other: Some("attempt".into()),
    }
}

/// The repository's tree-merge options.
fn tree_options(repo: &gix::Repository) -> Result<gix::merge::tree::Options, GitError> {
    repo.tree_merge_options()
        .map_err(|e| GitError::gix("configuring the merge", e))
}

/// How far [`reaches`] walks before it gives up.
const WALK: usize = 10_000;

/// Whether `from` reaches `to` by first parents (within [`WALK`] commits); with
/// `single`, only through commits with one parent.
fn reaches(repo: &gix::Repository, from: gix::ObjectId, to: gix::ObjectId, single: bool) -> bool {
    let mut at = from;
    for _ in 0..WALK {
        if at == to {
            return true;
        }
        let Ok(c) = repo.find_commit(at) else {
            return false;
        };
        let parents: Vec<gix::ObjectId> = c.parent_ids().map(gix::Id::detach).collect();
        match parents.first() {
            Some(p) if !single || parents.len() == 1 => at = *p,
            _ => return false,
        }
    }
    false
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
        let options: gix::merge::commit::Options = tree_options(&repo)?.into();
        let mut out = repo
            .merge_commits(ours, theirs, labels(), options)
            .map_err(|e| GitError::gix("merging", e))?;
        self.commit_merge(&repo, &mut out.tree_merge, (ours, theirs), style, message)
    }

    /// [`Git::merge`] with `base`, the commit `head`'s work started from, as the merge
    /// base when it surely is the one: `head` descends from it by single-parent
    /// commits, and `onto` by first parents. Finding a merge base by walking the
    /// commit graph costs what the history is long, each time; this costs what the
    /// work and the line's moves since `base` are long. Otherwise as `merge`.
    pub fn merge_from(
        &self,
        base: &CommitId,
        onto: &CommitId,
        head: &CommitId,
        style: MergeStyle,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        let repo = self.repo();
        let (b, ours, theirs) = (oid(base)?, oid(onto)?, oid(head)?);
        let linear = reaches(&repo, theirs, b, true) && reaches(&repo, ours, b, false);
        if !linear {
            return self.merge(onto, head, style, message);
        }
        let tree = |id: gix::ObjectId| {
            repo.find_commit(id)
                .and_then(|c| c.tree_id())
                .map(gix::Id::detach)
                .map_err(|e| GitError::gix("reading a commit", e))
        };
        let options = tree_options(&repo)?;
        let mut out = repo
            .merge_trees(tree(b)?, tree(ours)?, tree(theirs)?, labels(), options)
            .map_err(|e| GitError::gix("merging", e))?;
        self.commit_merge(&repo, &mut out, (ours, theirs), style, message)
    }

    /// A tree merge's result: its conflicts, or its commit on `ours` (and `theirs`).
    fn commit_merge(
        &self,
        repo: &gix::Repository,
        out: &mut gix::merge::tree::Outcome<'_>,
        (ours, theirs): (gix::ObjectId, gix::ObjectId),
        style: MergeStyle,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        let how = gix::merge::tree::TreatAsUnresolved::git();
        let mut conflicts: Vec<ConflictPath> = out
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
